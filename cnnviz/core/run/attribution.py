"""Which pixels a class score depends on: saliency and Grad-CAM, for one image.

Both explain the class score ``z_c``: the logit *before* a trailing Softmax or
LogSoftmax over the classes (``identities.stack_head``), since the
probabilities saturate and a logit does not. The model is the ``nn.Sequential``
that ``build.build_model`` makes (module ``i`` is layer ``i``), run module by
module on one input ``(1, C, H, W)`` already on the model's device, in eval
mode (every module's own mode put back afterwards), with
``torch.autograd.grad`` — so no parameter's ``.grad`` is touched and nothing is
left on the model.

* **Saliency** (Simonyan et al., 2014): ``∂z_c/∂x`` for the (normalised) input
  ``x``; the map is ``max over channels of |∂z_c/∂x|``, (H, W); the signed
  gradient, (C, H, W), comes with it.
* **Grad-CAM** (Selvaraju et al., 2017) at layer ``l`` with activation
  ``A`` (K, h, w): channel weights ``α_k = mean over (i, j) of ∂z_c/∂A^k_ij``,
  map ``ReLU(Σ_k α_k A^k)`` (h, w), upsampled bilinearly to (H, W)
  (``align_corners=False``). The default layer is the last one whose output is
  C×H×W (the last before Flatten): :func:`default_layer`.

An inplace layer is handed a clone of its input, so the activation kept for
Grad-CAM is what its layer produced. No Qt.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.core.run.faults import EngineError
from cnnviz.core.run.hygiene import model_mode
from cnnviz.core.run.identities import stack_head

__all__ = ["AttributionError", "GradCam", "Saliency", "attribute", "default_layer", "grad_cam", "saliency",
           "score_layer"]


class AttributionError(EngineError):
    """An input, class or layer that cannot be explained; the sentence says which and why."""

    kind = "config"


@dataclass(frozen=True)
class Saliency:
    """``|∂z_c/∂x|``: ``map`` (H, W) its maximum over channels, ``gradient`` (C, H, W) the signed ∂z_c/∂x."""

    class_index: int
    score: float
    score_layer: int
    map: np.ndarray
    gradient: np.ndarray


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM at ``layer``: ``map`` (H, W) upsampled, ``raw`` (h, w) ``ReLU(Σ α_k A^k)``, ``weights`` α (K,)."""

    class_index: int
    layer: int
    score: float
    score_layer: int
    map: np.ndarray
    raw: np.ndarray
    weights: np.ndarray


def score_layer(model: nn.Sequential, layer_types: Sequence[str] | None = None,
                layer_dims: Sequence[Any] | None = None) -> int:
    """The index of the layer whose output holds the class scores z: the one before a trailing
    Softmax/LogSoftmax over the classes, else the last. ``layer_types`` (and their ``dim``) default to
    the model's own modules."""
    n = len(model)
    if n == 0:
        raise AttributionError("the stack has no layers, so there is no class score to explain")
    types = list(layer_types) if layer_types is not None else [type(m).__name__ for m in model]
    if len(types) != n:
        raise AttributionError(f"{len(types)} layer types were given for a model of {n} layers")
    dims = list(layer_dims) if layer_dims is not None else [getattr(m, "dim", None) for m in model]
    head = stack_head(types, dims)
    if head is not None and n == 1:
        raise AttributionError(f"the stack is only a {head}: there is no score before it to explain")
    return n - 2 if head is not None else n - 1


def default_layer(shapes: Sequence[Sequence[int] | None], before: int | None = None) -> int:
    """The last layer (below ``before``) whose output ``shapes[i]`` (batch left out) is C×H×W: where
    Grad-CAM looks by default. Shapes may come from shape inference (``report.layers[i].output_shape``)."""
    end = len(shapes) if before is None else min(before, len(shapes))
    for i in range(end - 1, -1, -1):
        shape = shapes[i]
        if shape is not None and len(shape) == 3:
            return i
    raise AttributionError("no layer before the class scores has a C×H×W output (a feature map), so Grad-CAM "
                           "has nothing to weigh: it needs a convolutional layer before Flatten")


def _check_input(model: nn.Sequential, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise AttributionError(f"expected one image as a (1, C, H, W) tensor, got {shape}")
    param = next(iter(model.parameters()), None)
    if param is not None and param.device != x.device:
        raise AttributionError(f"the image is on {x.device} but the model is on {param.device}: move it first")


def _forward(model: nn.Sequential, x: torch.Tensor, end: int) -> list[torch.Tensor]:
    """Activations of layers 0..end (the input's gradient kept), each inplace layer given a clone."""
    h = x
    out = []
    for i, module in enumerate(model):
        if i > end:
            break
        h = module(h.clone() if getattr(module, "inplace", False) else h)
        out.append(h)
    return out


def _score(z: torch.Tensor, class_index: int | None) -> tuple[torch.Tensor, int]:
    scores = z.reshape(-1)
    k = scores.numel()
    c = int(scores.detach().argmax()) if class_index is None else int(class_index)
    if not 0 <= c < k:
        raise AttributionError(f"class {class_index} does not exist: the stack scores {k} classes (0 to {k - 1})")
    return scores[c], c


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def attribute(model: nn.Sequential, x: torch.Tensor, class_index: int | None = None, layer: int | None = None, *,
              layer_types: Sequence[str] | None = None, layer_dims: Sequence[Any] | None = None,
              cam: bool = True) -> tuple[Saliency, GradCam | None]:
    """Saliency and (with ``cam``) Grad-CAM from one forward and one backward pass.

    ``class_index`` defaults to the predicted class (the largest z); ``layer`` to :func:`default_layer`.
    """
    _check_input(model, x)
    end = score_layer(model, layer_types, layer_dims)
    with model_mode(model, False), torch.enable_grad():
        leaf = x.detach().clone().requires_grad_(True)
        acts = _forward(model, leaf, end)
        if cam:
            shapes = [tuple(a.shape[1:]) for a in acts]
            if layer is None:
                layer = default_layer(shapes, before=end)
            elif not 0 <= layer < end:
                raise AttributionError(f"layer {layer} is not a layer before the class scores (0 to {end - 1})")
            elif len(shapes[layer]) != 3:
                raise AttributionError(f"layer {layer} ({type(model[layer]).__name__}) outputs "
                                       f"{'×'.join(map(str, shapes[layer]))}, not a C×H×W feature map: Grad-CAM "
                                       f"needs a layer before Flatten")
        z_c, c = _score(acts[end], class_index)
        wrt = [leaf] + ([acts[layer]] if cam else [])
        grads = torch.autograd.grad(z_c, wrt, allow_unused=True)
        dx = grads[0] if grads[0] is not None else torch.zeros_like(leaf)
        score = float(z_c.detach())
        sal = Saliency(c, score, end, _np(dx[0].abs().amax(0)), _np(dx[0]))
        if not cam:
            return sal, None
        a = acts[layer].detach()
        da = grads[1] if grads[1] is not None else torch.zeros_like(a)
        alpha = da.mean(dim=(2, 3))  # (1, K)
        raw = F.relu((alpha[:, :, None, None] * a).sum(1, keepdim=True))  # (1, 1, h, w)
        up = F.interpolate(raw, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
        gc = GradCam(c, int(layer), score, end, _np(up[0, 0]), _np(raw[0, 0]), _np(alpha[0]))
    return sal, gc


def saliency(model: nn.Sequential, x: torch.Tensor, class_index: int | None = None, *,
             layer_types: Sequence[str] | None = None, layer_dims: Sequence[Any] | None = None) -> Saliency:
    """``|∂z_c/∂x|`` for one image (see the module's docstring)."""
    return attribute(model, x, class_index, layer_types=layer_types, layer_dims=layer_dims, cam=False)[0]


def grad_cam(model: nn.Sequential, x: torch.Tensor, class_index: int | None = None, layer: int | None = None, *,
             layer_types: Sequence[str] | None = None, layer_dims: Sequence[Any] | None = None) -> GradCam:
    """Grad-CAM at ``layer`` (default: the last C×H×W output before the scores) for one image."""
    return attribute(model, x, class_index, layer, layer_types=layer_types, layer_dims=layer_dims)[1]
