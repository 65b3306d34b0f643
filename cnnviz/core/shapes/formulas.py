"""PyTorch's output-size and receptive-field arithmetic, as plain functions of integers."""
from __future__ import annotations

from cnnviz.core.shapes.reports import ReceptiveField


def conv_out(size: int, k: int, s: int, pad_total: int, d: int) -> int:
    """torch's convolution output size for a padded total (before + after)."""
    return (size + pad_total - d * (k - 1) - 1) // s + 1


def pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """torch's pooling_output_shape, ceil_mode's last-window rule included."""
    out = (size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def same_padding(k: int, d: int) -> tuple[int, int]:
    """(before, after) padding of padding='same': torch puts the odd pixel after."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def rf_step(rf: ReceptiveField | None, k: tuple[int, int], s: tuple[int, int], before: tuple[int, int],
             d: tuple[int, int]) -> ReceptiveField | None:
    if rf is None:
        return None
    size, jump, start = [], [], []
    for a in range(2):
        eff = d[a] * (k[a] - 1) + 1
        size.append(int(rf.size[a] + (eff - 1) * rf.jump[a]))
        jump.append(rf.jump[a] * s[a])
        start.append(rf.start[a] + ((eff - 1) / 2 - before[a]) * rf.jump[a])
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))
