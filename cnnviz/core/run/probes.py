"""Probes: everything the views draw for one chosen sample, as plain numpy (picklable, CPU-side).

A probe runs the sample through the model module by module (no hooks to
install or forget), keeps every activation, and asks autograd for the
gradient of the sample's loss with respect to each activation, the input and
every parameter with ``torch.autograd.grad`` — so the parameters' ``.grad``
(the last training batch's) is left alone. An inplace layer (``ReLU(inplace=True)``,
``Dropout(inplace=True)``) is handed a clone of its input, so the activation
kept for the previous layer is the one it really produced and its gradient is
well defined; the model itself is not rebuilt.

``mode="train"`` runs Dropout and BatchNorm as in training (a batch of one);
BatchNorm's running statistics are put back afterwards, dropout draws from a
forked random stream (the training run's stream does not move), and every
module's train/eval flag is restored whatever happens. Everything computed on
the device travels to the host in one copy. No Qt.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from cnnviz.core.run import identities
from cnnviz.core.run.faults import EngineError, LayerFailed

MODES = ("eval", "train")


@dataclass(frozen=True)
class Probe:
    """One sample seen by the model at one step; numpy arrays have the batch dimension removed."""

    step: int
    split: str
    index: int
    mode: str
    device: str
    classes: tuple[str, ...]
    label: int
    prediction: int
    image: np.ndarray
    """The sample as the data set gives it, (C, H, W) float32 in [0, 1] (before normalisation)."""
    input_grad: np.ndarray
    """dL/d(normalised input), (C, H, W): a saliency map."""
    layer_labels: tuple[str, ...]
    activations: tuple[np.ndarray, ...]
    """Output of every layer, in order."""
    activation_grads: tuple[np.ndarray | None, ...]
    """dL/d(output of layer i) for this sample's loss (None where the loss does not depend on it)."""
    weight_norms: tuple[float | None, ...]
    """L2 norm of all of layer i's parameters together (None for a layer without parameters)."""
    grad_norms: tuple[float | None, ...]
    """L2 norm of dL/dθ of layer i for this sample's loss."""
    batch_grad_norms: tuple[float | None, ...]
    """The same for the last training batch (None before the first step)."""
    output: np.ndarray
    """The stack's output (K,)."""
    logits: np.ndarray
    """z (K,): the output, or the input of a final Softmax/LogSoftmax (see identities.py)."""
    softmax: np.ndarray
    log_softmax: np.ndarray
    loss: float
    identities: identities.Identities | None
    forward_ms: float
    total_ms: float

    @property
    def label_name(self) -> str:
        return self.classes[self.label] if 0 <= self.label < len(self.classes) else str(self.label)

    @property
    def correct(self) -> bool:
        return self.prediction == self.label


def _param_norms(tensors: list[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
    """L2 norm of each tensor (NaN for None) as one device vector: a single fused call."""
    present = [t.detach() for t in tensors if t is not None]
    norms = iter(torch._foreach_norm(present, 2) if present and hasattr(torch, "_foreach_norm")
                 else [torch.linalg.vector_norm(t) for t in present])
    nan = torch.full((), float("nan"), device=like.device)
    return torch.stack([next(norms) if t is not None else nan for t in tensors]) if tensors else nan.reshape(0)


def _per_layer(values: np.ndarray, sizes: list[int]) -> tuple[float | None, ...]:
    """Combine per-parameter norms into one norm per layer (None: no parameters, or no gradient)."""
    out = []
    pos = 0
    for size in sizes:
        part = [float(v) for v in values[pos:pos + size] if not math.isnan(v)]
        pos += size
        out.append(math.sqrt(sum(v * v for v in part)) if part else None)
    return tuple(out)


def take(session, index: int = 0, split="test", mode: str = "eval", with_identities: bool = True) -> Probe:
    """Probe sample ``index`` of ``split`` of ``session`` in ``mode`` (``"eval"`` or ``"train"``).

    ``split`` is ``"train"``, ``"test"``, or a ``(name, DeviceSplit)`` pair for
    rows that are not part of the data set (a person's own image).
    """
    from cnnviz.core.run.hygiene import model_mode

    if mode not in MODES:
        raise ValueError(f"mode must be 'eval' or 'train', got {mode!r}")
    if isinstance(split, tuple):
        split, data = split
    else:
        data = session._split(split)
    if not 0 <= index < data.n:
        raise EngineError(f"there is no sample {index} in the {split} split (it has {data.n})", kind="config")
    model = session.model
    started = time.perf_counter()
    x, y = data.rows(index, index + 1)
    training = mode == "train"
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if training else []
    layer_params = [[p for p in m.parameters()] for m in model]
    with model_mode(model, training), session._rng.forked(), torch.enable_grad():
        try:
            x = x.detach().clone().requires_grad_(True)
            acts = []
            h = x
            for i, module in enumerate(model):
                try:
                    h = module(h.clone() if getattr(module, "inplace", False) else h)
                except Exception as exc:  # torch's own error, with the layer that raised it
                    raise LayerFailed(f"layer {i} ({session.labels[i]}) failed in {mode} mode: "
                                      f"{type(exc).__name__}: {exc}", layer=i) from exc
                acts.append(h)
            forward_ms = (time.perf_counter() - started) * 1e3
            loss = identities.backward_scalar(session.loss_fn(h, y))
            flat = [p for group in layer_params for p in group]
            wanted = [x] + [a for a in acts if a.requires_grad]
            grads = torch.autograd.grad(loss, wanted + flat, allow_unused=True)
        finally:
            with torch.no_grad():
                for buffer, saved in buffers:
                    buffer.copy_(saved)
    by_id = {id(t): g for t, g in zip(wanted, grads[:len(wanted)])}
    param_grads = list(grads[len(wanted):])

    pieces: list[torch.Tensor] = []
    shapes: list[tuple[int, ...] | None] = []

    def put(t: torch.Tensor | None) -> None:
        if t is None:
            shapes.append(None)
            return
        t = t.detach()[0] if t.dim() > 0 and t.shape[0] == 1 else t.detach()
        shapes.append(tuple(t.shape))
        pieces.append(t.reshape(-1).float())

    put(by_id.get(id(x)))
    for a in acts:
        put(a)
    for a in acts:
        put(by_id.get(id(a)))
    flat_params = [p for group in layer_params for p in group]
    put(torch.cat([_param_norms(flat_params, loss), _param_norms(param_grads, loss),
                   _param_norms([p.grad for p in flat_params], loss)]))
    put(loss.reshape(1))
    flat_host = torch.cat(pieces).cpu().numpy() if pieces else np.zeros(0, np.float32)  # the one copy

    arrays: list[np.ndarray | None] = []
    offset = 0
    for shape in shapes:
        if shape is None:
            arrays.append(None)
            continue
        size = math.prod(shape)
        arrays.append(flat_host[offset:offset + size].reshape(shape))
        offset += size
    n_layers = len(acts)
    input_grad = arrays[0]
    act_arrays = tuple(arrays[1:1 + n_layers])
    act_grads = tuple(arrays[1 + n_layers:1 + 2 * n_layers])
    norm_values = arrays[1 + 2 * n_layers]
    loss_value = float(arrays[2 + 2 * n_layers].reshape(-1)[0])
    sizes = [len(group) for group in layer_params]
    per_param = norm_values.reshape(3, -1) if norm_values is not None else np.zeros((3, 0), np.float32)

    output = act_arrays[-1].reshape(-1) if act_arrays else flat_host[:0]
    z_index = session.z_index
    z = act_arrays[z_index] if z_index >= 0 else np.asarray(data.raw[index], np.float32)
    dz = act_grads[z_index] if z_index >= 0 else input_grad
    z_row = torch.from_numpy(np.ascontiguousarray(z.reshape(1, -1)))
    ids = None
    if with_identities:
        dz_t = torch.from_numpy(np.ascontiguousarray(dz.reshape(1, -1))) if dz is not None else None
        label_t = torch.tensor([int(data.labels_np[index])])
        ids = identities.check(z_row, label_t, session.stack.loss, session.head, z_source=session.z_source,
                               autograd_dz=dz_t)
    label = int(data.labels_np[index])
    return Probe(
        step=session.step_count, split=split, index=index, mode=mode, device=session.device_info.id,
        classes=session.classes, label=label, prediction=int(np.argmax(output)) if output.size else -1,
        image=np.array(data.raw[index], dtype=np.float32),
        input_grad=input_grad if input_grad is not None else np.zeros(session.stack.input.shape, np.float32),
        layer_labels=session.labels, activations=act_arrays, activation_grads=act_grads,
        weight_norms=_per_layer(per_param[0], sizes), grad_norms=_per_layer(per_param[1], sizes),
        batch_grad_norms=_per_layer(per_param[2], sizes),
        output=output, logits=z_row[0].numpy(), softmax=torch.softmax(z_row[0], 0).numpy(),
        log_softmax=torch.log_softmax(z_row[0], 0).numpy(), loss=loss_value, identities=ids,
        forward_ms=forward_ms, total_ms=(time.perf_counter() - started) * 1e3,
    )
