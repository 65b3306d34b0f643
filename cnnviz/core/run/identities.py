"""The loss-head identities, computed with real tensors and reported with their numbers.

What the window's gradient view shows (journey 4):

* autograd's ``dL/dz`` beside ``softmax(z) − t`` (``t`` the one-hot target,
  smoothed to ``(1−ε)·onehot + ε/K`` under label smoothing; each row weighted by
  its class weight; divided by the batch size for ``mean`` reduction — by the
  sum of the rows' class weights when weights are set, as torch does), and the
  largest difference;
* ``CrossEntropyLoss(z)`` beside ``NLLLoss(LogSoftmax(z))``;
* a max-shifted softmax beside the naive ``exp(z)/Σexp(z)`` on large logits,
  where the naive one overflows to inf/inf = nan in float32.

**Which z.** ``z`` is what CrossEntropyLoss should receive: the raw class
scores. If the stack ends with a Softmax or LogSoftmax over the classes, ``z`` is
that layer's *input* (so LogSoftmax + NLLLoss shows the same numbers as
CrossEntropyLoss on the scores before it); otherwise ``z`` is the stack's
output. ``dL/dz`` is always taken through the stack's real head and loss, so a
stack ending in Softmax + CrossEntropyLoss shows the identity failing for the
pre-softmax scores (the double-softmax lesson), and :attr:`Identities.at_output`
shows it holding for the Softmax's output, which is what the loss really treats
as logits. With ``reduction="none"`` the engine trains on the plain mean of the
per-sample losses, so the divisor is N. Imports torch, never Qt.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from cnnviz.core.model.stack import Loss

HEADS = ("Softmax", "LogSoftmax")
STABILITY_SCALE = 1000.0


@dataclass(frozen=True)
class GradientCheck:
    """autograd's gradient of the loss w.r.t. some (N, K) scores next to the closed form."""

    wrt: str
    autograd: np.ndarray
    formula: np.ndarray
    max_abs_diff: float
    holds: bool
    formula_text: str


@dataclass(frozen=True)
class LossCheck:
    """CrossEntropyLoss(z) next to NLLLoss(LogSoftmax(z)) (plus the smoothing term when ε > 0)."""

    cross_entropy: np.ndarray
    nll_of_log_softmax: np.ndarray
    max_abs_diff: float
    holds: bool
    stack_loss: np.ndarray
    text: str


@dataclass(frozen=True)
class SoftmaxStability:
    """Softmax of ``scale · z`` (float32) computed naively and with the max shift."""

    scale: float
    z: np.ndarray
    naive: np.ndarray
    shifted: np.ndarray
    torch_softmax: np.ndarray
    naive_log: np.ndarray
    log_softmax: np.ndarray
    naive_finite: bool
    shifted_vs_torch: float
    unscaled_naive_vs_shifted: float


@dataclass(frozen=True)
class Identities:
    z_source: str
    loss_type: str
    head: str | None
    reduction: str
    label_smoothing: float
    weighted: bool
    n: int
    num_classes: int
    z: np.ndarray
    target: np.ndarray
    dz: GradientCheck
    at_output: GradientCheck | None
    loss: LossCheck
    stability: SoftmaxStability
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def holds(self) -> bool:
        """Whether ``dL/dz = softmax(z) − t`` holds for this stack's head and loss."""
        return self.dz.holds


def _tolerance(reference: torch.Tensor) -> float:
    eps = torch.finfo(reference.dtype).eps if reference.is_floating_point() else 1e-7
    return float(1e-5 if eps > 1e-10 else 1e-10) * max(1.0, float(reference.abs().max()) if reference.numel() else 1.0)


def loss_settings(loss: Loss, num_classes: int, dtype=torch.float32, device=None) -> dict[str, Any]:
    """torch keyword values for the stack's loss: weight tensor, ignore_index, reduction, ε."""
    params = dict(loss.params)
    weight = params.get("weight")
    return {
        "weight": torch.tensor(weight, dtype=dtype, device=device) if weight is not None else None,
        "ignore_index": int(params.get("ignore_index", -100)),
        "reduction": params.get("reduction", "mean"),
        "label_smoothing": float(params.get("label_smoothing", 0.0)) if loss.type == "CrossEntropyLoss" else 0.0,
    }


def apply_head(z: torch.Tensor, head: str | None) -> torch.Tensor:
    if head == "Softmax":
        return torch.softmax(z, dim=1)
    if head == "LogSoftmax":
        return torch.log_softmax(z, dim=1)
    return z


def apply_loss(output: torch.Tensor, target: torch.Tensor, loss_type: str, s: dict[str, Any]) -> torch.Tensor:
    if loss_type == "CrossEntropyLoss":
        return F.cross_entropy(output, target, weight=s["weight"], ignore_index=s["ignore_index"],
                               reduction=s["reduction"], label_smoothing=s["label_smoothing"])
    return F.nll_loss(output, target, weight=s["weight"], ignore_index=s["ignore_index"], reduction=s["reduction"])


def backward_scalar(loss: torch.Tensor) -> torch.Tensor:
    """What the engine backpropagates: the loss, or the mean of per-sample losses for ``reduction="none"``."""
    return loss if loss.dim() == 0 else loss.mean()


def closed_form(z: torch.Tensor, target: torch.Tensor, s: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``dL/dz`` of CrossEntropyLoss(z) by the formula; returns (gradient, smoothed one-hot target, text)."""
    n, k = z.shape
    eps = s["label_smoothing"]
    weight = s["weight"] if s["weight"] is not None else torch.ones(k, dtype=z.dtype, device=z.device)
    weight = weight.to(z.dtype)
    ignored = target == s["ignore_index"]
    kept = (~ignored).to(z.dtype)
    safe = torch.where(ignored, torch.zeros_like(target), target)
    onehot = F.one_hot(safe, k).to(z.dtype)
    wy = weight[safe] * kept
    a = (1 - eps) * wy + (eps / k) * weight.sum() * kept
    b = (1 - eps) * wy[:, None] * onehot + (eps / k) * weight[None, :] * kept[:, None]
    grad = torch.softmax(z, dim=1) * a[:, None] - b
    reduction = s["reduction"]
    if reduction == "mean":
        grad = grad / wy.sum()
        divisor = "Σ w_y (the rows' class weights)" if s["weight"] is not None else "N"
    elif reduction == "none":
        grad = grad / n
        divisor = "N (reduction='none' is trained on the mean)"
    else:
        divisor = ""
    target_dist = ((1 - eps) * onehot + eps / k) * kept[:, None]
    t = "(1−ε)·onehot(y) + ε/K" if eps else "onehot(y)"
    core = f"w_y·(softmax(z) − {t})" if s["weight"] is not None and not eps else f"softmax(z) − {t}"
    if s["weight"] is not None and eps:
        core = "softmax(z)·((1−ε)·w_y + ε/K·Σw) − ((1−ε)·w_y·onehot(y) + ε/K·w)"
    text = f"({core}) / {divisor}" if divisor else core
    if bool(ignored.any()):
        text += f"; rows with y = {s['ignore_index']} (ignore_index) are 0"
    return grad, target_dist, text


def _gradient_check(z: torch.Tensor, target: torch.Tensor, loss_type: str, head: str | None,
                    s: dict[str, Any], wrt: str, autograd_dz: torch.Tensor | None = None,
                    formula: tuple[torch.Tensor, torch.Tensor, str] | None = None) -> GradientCheck:
    if autograd_dz is None:
        with torch.enable_grad():
            leaf = z.detach().clone().requires_grad_(True)
            value = backward_scalar(apply_loss(apply_head(leaf, head), target, loss_type, s))
            (autograd_dz,) = torch.autograd.grad(value, leaf)
    formula, _t, text = formula if formula is not None else closed_form(z.detach(), target, s)
    diff = float((autograd_dz.detach() - formula).abs().max()) if formula.numel() else 0.0
    holds = bool(np.isfinite(diff) and diff <= _tolerance(formula))
    return GradientCheck(wrt, _np(autograd_dz), _np(formula), diff, holds, text)


def _loss_check(z: torch.Tensor, target: torch.Tensor, loss_type: str, head: str | None,
                s: dict[str, Any]) -> LossCheck:
    k = z.shape[1]
    eps = s["label_smoothing"]
    ce = F.cross_entropy(z, target, weight=s["weight"], ignore_index=s["ignore_index"],
                         reduction=s["reduction"], label_smoothing=eps)
    log_p = torch.log_softmax(z, dim=1)
    nll = F.nll_loss(log_p, target, weight=s["weight"], ignore_index=s["ignore_index"], reduction=s["reduction"])
    text = "CrossEntropyLoss(z) = NLLLoss(LogSoftmax(z))"
    if eps:
        weight = s["weight"]
        smooth = -(log_p * weight[None, :]).sum(1) if weight is not None else -log_p.sum(1)
        ignored = target == s["ignore_index"]
        smooth = smooth.masked_fill(ignored, 0.0)
        if s["reduction"] == "mean":
            kept = target[~ignored]
            smooth = smooth.sum() / (weight[kept].sum() if weight is not None else (~ignored).sum())
        elif s["reduction"] == "sum":
            smooth = smooth.sum()
        nll = (1 - eps) * nll + (eps / k) * smooth
        text = "CrossEntropyLoss(z, ε) = (1−ε)·NLLLoss(LogSoftmax(z)) + ε/K·Σ_k −LogSoftmax(z)_k"
    stack_loss = apply_loss(apply_head(z, head), target, loss_type, s)
    diff = float((ce - nll).abs().max()) if ce.numel() else 0.0
    return LossCheck(_np(ce), _np(nll), diff, bool(np.isfinite(diff) and diff <= _tolerance(ce)), _np(stack_loss), text)


def softmax_stability(z_row: torch.Tensor, scale: float | None = None) -> SoftmaxStability:
    """The naive and the max-shifted softmax of one row of scores, in float32, at ``scale``.

    The default scale is 1000, raised so that the largest score is at least 1000
    in size: float32's ``exp`` overflows above about 88.7, so the naive form
    turns into inf/inf = nan while the shifted one stays exact.
    """
    row = z_row.detach().reshape(-1).to("cpu", torch.float32)
    if scale is None:
        peak = float(row.abs().max()) if row.numel() else 0.0
        scale = STABILITY_SCALE if peak * STABILITY_SCALE >= 1000.0 or peak == 0.0 else 1000.0 / peak
    zs = row * scale
    naive = torch.exp(zs) / torch.exp(zs).sum()
    shifted_e = torch.exp(zs - zs.max())
    shifted = shifted_e / shifted_e.sum()
    naive_log = torch.log(naive)
    plain = torch.exp(row) / torch.exp(row).sum()
    plain_shift = torch.exp(row - row.max()) / torch.exp(row - row.max()).sum()
    torch_sm = torch.softmax(zs, dim=0)
    return SoftmaxStability(
        scale=float(scale), z=_np(zs), naive=_np(naive), shifted=_np(shifted), torch_softmax=_np(torch_sm),
        naive_log=_np(naive_log), log_softmax=_np(torch.log_softmax(zs, dim=0)),
        naive_finite=bool(torch.isfinite(naive).all()),
        shifted_vs_torch=float((shifted - torch_sm).abs().max()),
        unscaled_naive_vs_shifted=float((plain - plain_shift).abs().max()),
    )


def _notes(head: str | None, loss_type: str, dz: GradientCheck, at_output: GradientCheck | None,
           z_source: str) -> tuple[str, ...]:
    d = f"{dz.max_abs_diff:.2g}"
    if loss_type == "CrossEntropyLoss" and head is None:
        return (f"dL/dz = {dz.formula_text}: autograd and the formula agree to {d}.",)
    if loss_type == "NLLLoss" and head == "LogSoftmax":
        return (f"z is {z_source}. NLLLoss(LogSoftmax(z)) is CrossEntropyLoss(z), so dL/dz = "
                f"{dz.formula_text}: autograd and the formula agree to {d}.",)
    if loss_type == "CrossEntropyLoss" and head == "LogSoftmax":
        return (f"z is {z_source}. CrossEntropyLoss applies log_softmax itself, and log_softmax of "
                f"log-probabilities changes nothing, so dL/dz = softmax(z) − y still holds (to {d}); "
                "LogSoftmax with NLLLoss says what is meant.",)
    if loss_type == "CrossEntropyLoss" and head == "Softmax":
        out = f" It does hold for the Softmax's output p, which the loss treats as logits (to " \
              f"{at_output.max_abs_diff:.2g})." if at_output is not None and at_output.holds else ""
        return (f"Double softmax: CrossEntropyLoss applies log_softmax itself, so the loss sees "
                f"softmax(softmax(z)). For z ({z_source}) autograd's dL/dz differs from softmax(z) − y by "
                f"up to {d}: the gradient is squashed and learning is slow.{out} Remove the Softmax, or end "
                "with LogSoftmax and use NLLLoss.",)
    if loss_type == "NLLLoss" and head == "Softmax":
        return (f"NLLLoss expects log-probabilities but gets probabilities: the loss is −p_y, not −log p_y, "
                f"and dL/dz differs from softmax(z) − y by up to {d}. Use LogSoftmax instead of Softmax.",)
    return (f"NLLLoss expects log-probabilities, but the stack ends with raw scores: the loss is −z_y and "
            f"dL/dz = −onehot(y), which differs from softmax(z) − y by up to {d}. End the stack with LogSoftmax.",)


def check(z: torch.Tensor, target: torch.Tensor, loss: Loss, head: str | None = None, *,
          z_source: str = "the stack's output", autograd_dz: torch.Tensor | None = None,
          stability_scale: float | None = None) -> Identities:
    """Every identity for scores ``z`` (N, K) and class targets ``target`` (N,), under ``loss``.

    ``head`` is ``"Softmax"``/``"LogSoftmax"`` when the stack applies one to ``z``
    before the loss. ``autograd_dz`` is dL/dz from the network's own backward
    pass when the caller has it (the probe does); otherwise it is computed here
    through the same head and loss.
    """
    if head not in (None, *HEADS):
        raise ValueError(f"unknown head {head!r}")
    z = z.detach()
    if z.dim() != 2:
        raise ValueError(f"expected scores of shape (N, K), got {tuple(z.shape)}")
    target = target.detach().to(z.device, torch.long)
    n, k = z.shape
    s = loss_settings(loss, k, z.dtype, z.device)
    form = closed_form(z, target, s)
    dz = _gradient_check(z, target, loss.type, head, s, f"z ({z_source})", autograd_dz, form)
    at_output = None
    if head == "Softmax" and loss.type == "CrossEntropyLoss":
        at_output = _gradient_check(apply_head(z, head), target, loss.type, None, s,
                                    "p = softmax(z), the input of the loss")
    target_dist = form[1]
    return Identities(
        z_source=z_source, loss_type=loss.type, head=head, reduction=s["reduction"],
        label_smoothing=s["label_smoothing"], weighted=s["weight"] is not None, n=n, num_classes=k,
        z=_np(z), target=_np(target_dist), dz=dz, at_output=at_output,
        loss=_loss_check(z, target, loss.type, head, s),
        stability=softmax_stability(z[0], stability_scale),
        notes=_notes(head, loss.type, dz, at_output, z_source),
    )


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy().copy()


def describe(ids: Identities) -> list[str]:
    """The identities as lines of text (for the command line and logs)."""
    lines = [f"dL/dz vs {ids.dz.formula_text}: max |difference| {ids.dz.max_abs_diff:.3g} "
             f"({'holds' if ids.dz.holds else 'does not hold'})"]
    if ids.at_output is not None:
        lines.append(f"dL/dp vs softmax(p) − y at the loss input: max |difference| {ids.at_output.max_abs_diff:.3g}")
    lines.append(f"{ids.loss.text}: max |difference| {ids.loss.max_abs_diff:.3g}")
    st = ids.stability
    lines.append(f"softmax of z×{st.scale:g}: naive {'finite' if st.naive_finite else 'overflows to nan/inf'}, "
                 f"max-shifted vs torch.softmax {st.shifted_vs_torch:.3g}")
    lines.extend(ids.notes)
    return lines


def stack_head(layer_types: Sequence[str], layer_dims: Sequence[Any]) -> str | None:
    """``"Softmax"``/``"LogSoftmax"`` if the last layer is one over the class dimension, else None."""
    if not layer_types or layer_types[-1] not in HEADS:
        return None
    return layer_types[-1] if layer_dims[-1] in (None, 1, -1) else None
