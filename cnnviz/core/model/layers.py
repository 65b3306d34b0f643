"""The layer catalogue: one declarative entry per supported ``torch.nn`` class.

The file reader, the shape engine, the torch builder, the code exporter and the
sidebar's property editor all read this table. Adding a layer type means adding
one entry here plus its shape rule in ``cnnviz.core.shapes.rules``; nothing else needs to know.

No torch and no Qt are imported here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# Limits that stop absurd or hostile input before anything is allocated.
MAX_CHANNELS = 16_384
MAX_FEATURES = 1_048_576
MAX_KERNEL = 1_024
MAX_STRIDE = 1_024
MAX_PADDING = 2_048
MAX_DILATION = 1_024
MAX_INPUT_CHANNELS = 64
MAX_INPUT_SIZE = 4_096
MAX_LAYERS = 512
"""Layers in a stack, counted at every depth (a block and each layer inside it)."""
MAX_BLOCK_DEPTH = 8
"""Blocks inside blocks, at most."""
BLOCKS = ("Residual", "Concat")
"""The types of a layer that holds lists of layers (SPEC §3.1): not catalogue entries, they have no keywords."""
MAX_CLASSES = MAX_FEATURES

# Kinds of parameter value. Each names how a value is written in a file and
# which widget edits it.
INT = "int"            # an integer
FLOAT = "float"        # a finite number
BOOL = "bool"          # true / false
CHOICE = "choice"      # one of ``choices`` (strings)
PAIR = "pair"          # an int or [int, int]
PADDING = "padding"    # a pair, or "same" / "valid" (Conv2d)
OPT_PAIR = "opt_pair"  # null or a pair (pooling stride: null means kernel_size)
OPT_INT = "opt_int"    # null or an int
OPT_FLOAT = "opt_float"  # null or a finite number
SIZE = "size"          # an int or [int|null, int|null] (AdaptiveAvgPool2d output_size)
WEIGHTS = "weights"    # null or a list of non-negative numbers, one per class

REQUIRED = object()  # marks a constructor argument with no default in torch
DEFAULT = object()   # as a value given for a keyword: "leave it out", torch's default (or the inferred count) again


@dataclass(frozen=True)
class Param:
    """One constructor keyword of a torch class."""

    name: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    shapes: bool = False      # does the value change output shapes?
    inferred: bool = False    # may be omitted: taken from the previous layer's output
    suggest: Any = None       # value a layer added from the palette starts with (required params, Softmax dim)
    min_inclusive: bool = True

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.inferred

    def is_default(self, value: Any) -> bool:
        """Whether ``value`` means "back to default", so the keyword is left out of the layer (and the file).

        That is :data:`DEFAULT` itself, None for an inferred count ("auto"), or a value
        equal to torch's default and of its kind (True is not 1, [1, 1] is not 1).
        """
        if value is DEFAULT:
            return True
        if self.inferred:
            return value is None
        return self.default is not REQUIRED and type(value) is type(self.default) and value == self.default


@dataclass(frozen=True)
class LayerSpec:
    """A catalogue entry: a ``torch.nn`` class and its keywords."""

    type: str
    group: str
    doc: str
    params: tuple[Param, ...] = ()
    is_loss: bool = False
    learnable: bool = False
    param_index: Mapping[str, Param] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_index", {p.name: p for p in self.params})

    def param(self, name: str) -> Param:
        return self.param_index[name]

    def initial_params(self) -> dict[str, Any]:
        """Keywords a layer added from the palette starts with: the required ones, and those whose torch
        default warns (Softmax's ``dim``, deprecated when left out: the palette gives ``dim=1``)."""
        return {p.name: p.suggest for p in self.params if p.required or p.suggest is not None}


GROUPS = (
    "convolution",
    "pooling",
    "normalisation",
    "activation",
    "regularisation",
    "reshaping",
    "output",
)


def _pair(name, doc, default=REQUIRED, lo=1, hi=MAX_KERNEL, suggest=None, shapes=True):
    return Param(name, PAIR, default, doc, lo, hi, shapes=shapes, suggest=suggest)


_INPLACE = Param("inplace", BOOL, False, "Overwrite the input tensor instead of allocating a new one.")

_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec(
        "Conv2d", "convolution",
        "2-D convolution: each output channel is a learned filter slid over all input channels of its group.",
        (
            Param("in_channels", INT, REQUIRED, "Channels arriving from the previous layer (taken from it when omitted).",
                  1, MAX_CHANNELS, shapes=True, inferred=True),
            Param("out_channels", INT, REQUIRED, "Number of filters, so the number of output channels.",
                  1, MAX_CHANNELS, shapes=True, suggest=8),
            _pair("kernel_size", "Height and width of each filter.", suggest=3),
            _pair("stride", "Step between neighbouring filter positions.", 1, 1, MAX_STRIDE),
            Param("padding", PADDING, 0, "Border added to each side; 'same' keeps the size, 'valid' adds none.",
                  0, MAX_PADDING, choices=("same", "valid"), shapes=True),
            _pair("dilation", "Spacing between filter taps; the kernel spans dilation*(k-1)+1 pixels.", 1, 1,
                  MAX_DILATION),
            Param("groups", INT, 1, "Split channels into groups convolved separately; must divide both channel counts.",
                  1, MAX_CHANNELS, shapes=True),
            Param("bias", BOOL, True, "Add a learned offset to each output channel."),
            Param("padding_mode", CHOICE, "zeros", "What the border is filled with: zeros or copies of the image.",
                  choices=("zeros", "reflect", "replicate", "circular"), shapes=True),
        ),
        learnable=True,
    ),
    LayerSpec(
        "MaxPool2d", "pooling",
        "Keeps the largest value in each window.",
        (
            _pair("kernel_size", "Height and width of the pooling window.", suggest=2),
            Param("stride", OPT_PAIR, None, "Step between windows; empty means the kernel size.", 1, MAX_STRIDE,
                  shapes=True),
            _pair("padding", "Implicit -inf border on each side; at most half the kernel.", 0, 0, MAX_PADDING),
            _pair("dilation", "Spacing between the window's taps.", 1, 1, MAX_DILATION),
            Param("return_indices", BOOL, False,
                  "Also return where each maximum came from (only for MaxUnpool2d; the next layer cannot take it)."),
            Param("ceil_mode", BOOL, False,
                  "Round the output size up, keeping a last partial window (unless it starts in the right padding).",
                  shapes=True),
        ),
    ),
    LayerSpec(
        "AvgPool2d", "pooling",
        "Averages each window.",
        (
            _pair("kernel_size", "Height and width of the pooling window.", suggest=2),
            Param("stride", OPT_PAIR, None, "Step between windows; empty means the kernel size.", 1, MAX_STRIDE,
                  shapes=True),
            _pair("padding", "Implicit zero border on each side; at most half the kernel.", 0, 0, MAX_PADDING),
            Param("ceil_mode", BOOL, False,
                  "Round the output size up, keeping a last partial window (unless it starts in the right padding).",
                  shapes=True),
            Param("count_include_pad", BOOL, True, "Count padded zeros in the average's divisor."),
            Param("divisor_override", OPT_INT, None, "Divide every window's sum by this instead of its size.",
                  1, 1 << 20),
        ),
    ),
    LayerSpec(
        "AdaptiveAvgPool2d", "pooling",
        "Averages into a fixed output size, whatever the input size (1 = global average pooling).",
        (
            Param("output_size", SIZE, REQUIRED, "Target height and width; empty keeps that input dimension.",
                  1, MAX_INPUT_SIZE, shapes=True, suggest=1),
        ),
    ),
    LayerSpec(
        "BatchNorm2d", "normalisation",
        "Normalises each channel by the batch's mean and variance, then scales and shifts it.",
        (
            Param("num_features", INT, REQUIRED, "Channels arriving (taken from the previous layer when omitted).",
                  1, MAX_CHANNELS, shapes=True, inferred=True),
            Param("eps", FLOAT, 1e-5, "Added to the variance to avoid dividing by zero.", 0.0, 1.0, min_inclusive=False),
            Param("momentum", OPT_FLOAT, 0.1, "Weight of each batch in the running statistics; empty: a plain average.",
                  0.0, 1.0),
            Param("affine", BOOL, True, "Learn a per-channel scale (and shift)."),
            Param("track_running_stats", BOOL, True, "Keep running statistics for evaluation mode."),
            Param("bias", BOOL, True, "Learn the per-channel shift too (with affine)."),
        ),
        learnable=True,
    ),
    LayerSpec(
        "BatchNorm1d", "normalisation",
        "Normalises each feature of a flat vector (after Flatten or Linear) by the batch's mean and variance, "
        "then scales and shifts it: the classifier head's BatchNorm. Each feature has one value per sample, so "
        "training needs batches of at least 2.",
        (
            Param("num_features", INT, REQUIRED, "Features arriving (taken from the previous layer when omitted).",
                  1, MAX_FEATURES, shapes=True, inferred=True),
            Param("eps", FLOAT, 1e-5, "Added to the variance to avoid dividing by zero.", 0.0, 1.0, min_inclusive=False),
            Param("momentum", OPT_FLOAT, 0.1, "Weight of each batch in the running statistics; empty: a plain average.",
                  0.0, 1.0),
            Param("affine", BOOL, True, "Learn a per-feature scale (and shift)."),
            Param("track_running_stats", BOOL, True, "Keep running statistics for evaluation mode."),
            Param("bias", BOOL, True, "Learn the per-feature shift too (with affine)."),
        ),
        learnable=True,
    ),
    LayerSpec("ReLU", "activation", "max(0, x).", (_INPLACE,)),
    LayerSpec("ReLU6", "activation", "min(max(0, x), 6): ReLU capped at 6 (MobileNet).", (_INPLACE,)),
    LayerSpec(
        "LeakyReLU", "activation", "x for x > 0, negative_slope * x otherwise.",
        (Param("negative_slope", FLOAT, 0.01, "Slope for negative inputs.", -1e6, 1e6), _INPLACE),
    ),
    LayerSpec(
        "ELU", "activation", "x for x > 0, alpha * (exp(x) - 1) otherwise: smooth, saturating at -alpha.",
        (Param("alpha", FLOAT, 1.0, "Value the negative side saturates towards (as -alpha).", -1e6, 1e6), _INPLACE),
    ),
    LayerSpec(
        "GELU", "activation", "x * Phi(x), the Gaussian error linear unit.",
        (Param("approximate", CHOICE, "none", "Exact erf form, or the tanh approximation.", choices=("none", "tanh")),),
    ),
    LayerSpec("SiLU", "activation", "x * sigmoid(x), also called swish.", (_INPLACE,)),
    LayerSpec("Hardswish", "activation", "x * relu6(x + 3) / 6: a cheap piecewise swish (MobileNetV3).", (_INPLACE,)),
    LayerSpec("Sigmoid", "activation", "1 / (1 + exp(-x)).", ()),
    LayerSpec("Hardsigmoid", "activation", "relu6(x + 3) / 6: a cheap piecewise sigmoid (MobileNetV3).", (_INPLACE,)),
    LayerSpec("Tanh", "activation", "tanh(x).", ()),
    LayerSpec(
        "Dropout", "regularisation", "In training, zeroes each element with probability p and scales the rest by 1/(1-p).",
        (Param("p", FLOAT, 0.5, "Probability of zeroing an element.", 0.0, 1.0), _INPLACE),
    ),
    LayerSpec(
        "Dropout2d", "regularisation", "In training, zeroes whole channels with probability p.",
        (Param("p", FLOAT, 0.5, "Probability of zeroing a channel.", 0.0, 1.0), _INPLACE),
    ),
    LayerSpec(
        "Flatten", "reshaping", "Merges dimensions start_dim..end_dim into one (dimension 0 is the batch).",
        (
            Param("start_dim", INT, 1, "First dimension to merge (0 is the batch).", -8, 7, shapes=True),
            Param("end_dim", INT, -1, "Last dimension to merge (-1 is the last).", -8, 7, shapes=True),
        ),
    ),
    LayerSpec(
        "Linear", "reshaping",
        "Fully connected: every output is a weighted sum of all inputs along the last dimension.",
        (
            Param("in_features", INT, REQUIRED, "Size of the last input dimension (taken from the previous layer when omitted).",
                  1, MAX_FEATURES, shapes=True, inferred=True),
            Param("out_features", INT, REQUIRED, "Number of outputs.", 1, MAX_FEATURES, shapes=True, suggest=10),
            Param("bias", BOOL, True, "Add a learned offset to each output."),
        ),
        learnable=True,
    ),
    LayerSpec("Identity", "reshaping", "Passes its input through unchanged: a placeholder that keeps a place.", ()),
    LayerSpec(
        "Softmax", "output", "exp(z_i) / sum_j exp(z_j) along dim: probabilities that sum to 1.",
        (Param("dim", OPT_INT, None, "Dimension to normalise (1 or -1 for class scores; 0 is the batch).", -8, 7,
               suggest=1),),
    ),
    LayerSpec(
        "LogSoftmax", "output", "log(softmax(z)), computed stably: z_i - logsumexp(z).",
        (Param("dim", OPT_INT, None, "Dimension to normalise (1 or -1 for class scores; 0 is the batch).", -8, 7,
               suggest=1),),
    ),
)

_LOSS_COMMON = (
    Param("weight", WEIGHTS, None, "A weight per class, for unbalanced classes; empty: all 1.", 0.0, 1e6),
    Param("ignore_index", INT, -100, "Targets with this class index are skipped.", -(1 << 31), (1 << 31) - 1),
    Param("reduction", CHOICE, "mean", "How per-sample losses are combined.", choices=("mean", "sum", "none")),
)

_LOSSES: tuple[LayerSpec, ...] = (
    LayerSpec(
        "CrossEntropyLoss", "loss",
        "-log softmax(z)[y]: applies log_softmax itself, so it takes raw scores (logits).",
        _LOSS_COMMON + (
            Param("label_smoothing", FLOAT, 0.0, "Mix this much of a uniform distribution into the target.", 0.0, 1.0),
        ),
        is_loss=True,
    ),
    LayerSpec(
        "NLLLoss", "loss",
        "-x[y]: expects log-probabilities, so the stack should end with LogSoftmax.",
        _LOSS_COMMON,
        is_loss=True,
    ),
)

CATALOGUE: dict[str, LayerSpec] = {spec.type: spec for spec in _LAYERS}
LOSSES: dict[str, LayerSpec] = {spec.type: spec for spec in _LOSSES}
DEFAULT_LOSS = "CrossEntropyLoss"


def spec_for(type_name: str) -> LayerSpec:
    """The catalogue entry of a layer or loss type; KeyError if it is not there."""
    if type_name in CATALOGUE:
        return CATALOGUE[type_name]
    return LOSSES[type_name]


def by_group() -> dict[str, list[LayerSpec]]:
    """Layer entries grouped for the palette, in catalogue order."""
    out: dict[str, list[LayerSpec]] = {g: [] for g in GROUPS}
    for spec in _LAYERS:
        out[spec.group].append(spec)
    return out


def as_pair(value: Any) -> tuple[Any, Any]:
    """An int (or None) becomes (v, v); a two-element list or tuple becomes a tuple."""
    if isinstance(value, (list, tuple)):
        return (value[0], value[1])
    return (value, value)


def resolved_params(spec: LayerSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every keyword with its effective value: given ones, else torch's default."""
    out = {}
    for p in spec.params:
        if p.name in given:
            out[p.name] = given[p.name]
        elif p.default is not REQUIRED:
            out[p.name] = p.default
        else:
            out[p.name] = None
    return out
