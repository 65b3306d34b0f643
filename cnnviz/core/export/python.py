"""Export a stack as standalone PyTorch code (no torch needed to generate it).

``to_python`` writes code that imports only torch and defines ``build_model()``,
in one of two styles (the contrast the reference draws between ``nn`` and
``nn.functional``):

- ``"module"``: an ``nn.Sequential`` of ``nn`` layers, the way most people write it;
- ``"functional"``: an ``nn.Module`` that owns its weights as explicit
  ``nn.Parameter``s and calls ``torch.nn.functional`` in ``forward``.

Both give the same output shape and parameter count as the stack, and the same
numbers for the same weights (parameters are declared in the same order).
Text from the stack (its name, description and labels) reaches the code
only as escaped docstrings and comments, and the result is parsed before it
is returned (docs/security.md).

Given ``weights`` (the name of a safetensors file beside the ``.py``, as
:func:`cnnviz.core.export.write_python_with_weights` writes it),
``build_model(weights=...)`` loads trained weights with a lazy import of
safetensors (cnnviz's tensor names, ``"0.weight"``, mapped to the functional
style's own), and ``WEIGHTS`` is that file's path. Given ``classes`` and
``mean``/``std``, the file also defines ``CLASSES`` (the names as ``repr``
literals: data, never code), ``MEAN``, ``STD``, ``preprocess(image)`` and
``classify(model, image)``, so that it classifies an image as the window does.
Without them the file is as before, and imports only torch.
"""
from __future__ import annotations

import keyword
import math
import re
from collections.abc import Sequence
from typing import Any

from cnnviz.core.model import text
from cnnviz.core.model.layers import CATALOGUE, LOSSES, REQUIRED, as_pair
from cnnviz.core.model.stack import Stack
from cnnviz.core.shapes import StackReport, fmt_shape, infer

STYLES = ("module", "functional")

# Keywords passed positionally, in torch's order, as people write them.
_POSITIONAL = {
    "Conv2d": ("in_channels", "out_channels", "kernel_size"),
    "Linear": ("in_features", "out_features"),
    "BatchNorm2d": ("num_features",),
    "BatchNorm1d": ("num_features",),
    "MaxPool2d": ("kernel_size",),
    "AvgPool2d": ("kernel_size",),
    "AdaptiveAvgPool2d": ("output_size",),
}


class ExportError(ValueError):
    """The stack cannot be exported (a shape error, or a missing package); the message says why."""


def _lit(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_lit(v) for v in value) + ")"
    if isinstance(value, float):
        return repr(value)
    return repr(value)


def checked_report(stack: Stack) -> StackReport:
    """The stack's report; ExportError with the reason when it cannot run."""
    report = infer(stack)
    if report.problem:
        raise ExportError(f"the stack cannot be exported: {report.problem}")
    return report


def _call_args(type_name: str, resolved: dict[str, Any]) -> str:
    spec = CATALOGUE.get(type_name) or LOSSES[type_name]
    positional = _POSITIONAL.get(type_name, ())
    parts = [_lit(resolved[name]) for name in positional]
    for p in spec.params:
        if p.name in positional:
            continue
        value = resolved.get(p.name)
        if p.default is not REQUIRED and value == p.default and type(value) is type(p.default):
            continue
        if value is None and p.default is None:
            continue
        if p.name == "weight" and type_name in LOSSES:
            parts.append(f"weight=torch.tensor({_lit(list(value))})")
            continue
        parts.append(f"{p.name}={_lit(value)}")
    return ", ".join(parts)


def _identifier(text: str) -> str:
    words = re.split(r"[^0-9A-Za-z]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not name or name[0].isdigit() or keyword.iskeyword(name):
        name = "Net" + name
    return name


def _header(stack: Stack, report: StackReport, style: str) -> list[str]:
    from cnnviz import __version__

    desc = f"{text.for_docstring(stack.name)}: exported by cnnviz {__version__} ({style} style)."
    loss_args = _call_args(stack.loss.type, report.loss.resolved)
    lines = [
        '"""' + desc,
        "",
        f"Input: N×{fmt_shape(report.input_shape)}. Output: N×{fmt_shape(report.output_shape)}. "
        f"Parameters: {report.total_params:,}.",
        f"Loss: nn.{stack.loss.type}({loss_args}).",
    ]
    if stack.description:
        lines += ["", *(text.for_docstring(line) for line in _wrap(stack.description))]
    lines += ['"""', "import torch", "from torch import nn"]
    return lines


def _wrap(words: str, width: int = 79) -> list[str]:
    out, line = [], ""
    for word in words.split():
        if len(line) + len(word) + 1 > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        out.append(line)
    return out


class _Extras:
    """What a classifier export adds: the weights file's name, the class names, the normalisation."""

    def __init__(self, stack: Stack, weights: str | None, classes: Sequence[str] | None,
                 mean: Sequence[float] | None, std: Sequence[float] | None) -> None:
        channels = stack.input.channels
        if weights is not None and (not isinstance(weights, str) or not weights):
            raise ExportError("the weights file must be named by a non-empty string")
        self.weights = weights
        self.classes = None if classes is None else tuple(str(c) for c in classes)
        if (mean is None) != (std is None):
            raise ExportError("the normalisation needs both mean and std")
        self.mean = self.std = None
        if mean is not None:
            self.mean, self.std = _channels(mean, channels, "mean"), _channels(std, channels, "std")
            if any(v <= 0 for v in self.std):
                raise ExportError("every std must be positive")
        self.helpers = self.classes is not None or self.mean is not None

    @property
    def any(self) -> bool:
        return self.weights is not None or self.helpers


def _channels(values: Sequence[float], channels: int, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ExportError(f"the {what} must be numbers, one per channel") from None
    if len(out) == 1 and channels > 1:
        out = out * channels
    if len(out) != channels or not all(math.isfinite(v) for v in out):
        raise ExportError(f"the {what} must be {channels} finite number(s), one per channel; got {len(out)}")
    return out


def _load_lines(keys: dict[str, str] | None) -> list[str]:
    """The end of ``build_model(weights)``: the lazy safetensors import and the load."""
    lines = ["    if weights is not None:",
             "        from safetensors.torch import load_file  # only when weights are given",
             "",
             "        state = load_file(weights)"]
    if keys is not None:  # cnnviz's files name tensors as nn.Sequential does ("0.weight")
        lines += ["        names = {" + ", ".join(f"{k!r}: {v!r}" for k, v in keys.items()) + "}",
                  "        state = {names.get(key, key): value for key, value in state.items()}"]
    lines += ["        model.load_state_dict(state)", "    return model"]
    return lines


_BUILD_DOC = '    """The model; with ``weights`` (a safetensors file, such as WEIGHTS), its trained weights."""'


def _helpers(stack: Stack, report: StackReport, extras: _Extras) -> list[str]:
    lines: list[str] = []
    if extras.weights is not None:
        lines += ["# The trained weights exported beside this file: build_model(WEIGHTS) (needs safetensors).",
                  f"WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), {extras.weights!r})"]
    if not extras.helpers:
        return lines
    if extras.classes is not None:
        lines += ["# The class names, in the order of the outputs.", "CLASSES = ("]
        lines += [f"    {name!r}," for name in extras.classes]
        lines.append(")")
    if extras.mean is not None:
        lines += ["# The normalisation of the training data, per channel: (x - MEAN) / STD.",
                  f"MEAN = {extras.mean!r}", f"STD = {extras.std!r}"]
    lines += ["", "",
              "def preprocess(image: torch.Tensor) -> torch.Tensor:",
              '    """An image C×H×W (or a batch N×C×H×W) with values in [0, 1], as the model takes it: N×C×H×W."""',
              "    x = torch.as_tensor(image, dtype=torch.float32)",
              "    if x.dim() == 3:",
              "        x = x.unsqueeze(0)"]
    if extras.mean is not None:
        lines += ["    mean = torch.tensor(MEAN, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)",
                  "    std = torch.tensor(STD, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)",
                  "    x = (x - mean) / std"]
    lines.append("    return x")
    last = report.layers[-1].type if report.layers else None
    if last == "Softmax":
        probs = "y"
    elif last == "LogSoftmax":
        probs = "y.exp()"
    else:
        probs = "torch.softmax(y, dim=1)"
    name = "CLASSES[index] if index < len(CLASSES) else str(index)" if extras.classes is not None else "str(index)"
    lines += ["", "",
              "def classify(model: nn.Module, image: torch.Tensor) -> tuple[str, float]:",
              '    """The class the model (in eval mode) gives one image C×H×W in [0, 1], and its probability."""',
              "    was_training = model.training",
              "    model.eval()",
              "    try:",
              "        with torch.no_grad():",
              "            y = model(preprocess(image)).reshape(1, -1)",
              "    finally:",
              "        model.train(was_training)",
              f"    p = {probs}[0]",
              "    index = int(p.argmax())",
              f"    return {name}, float(p[index])"]
    return lines


def _footer(stack: Stack, report: StackReport, extras: _Extras | None = None) -> list[str]:
    c, h, w = report.input_shape
    extras = extras or _Extras(stack, None, None, None, None)
    helpers = _helpers(stack, report, extras)
    return [
        "",
        "",
        f"INPUT_SHAPE = ({c}, {h}, {w})",
        f"NUM_PARAMETERS = {report.total_params}",
        *helpers,
        "",
        "",
        "def build_loss() -> nn.Module:",
        f"    return nn.{stack.loss.type}({_call_args(stack.loss.type, report.loss.resolved)})",
        "",
        "",
        'if __name__ == "__main__":',
        "    model = build_model(WEIGHTS)" if extras.weights is not None else "    model = build_model()",
        "    x = torch.zeros(2, *INPUT_SHAPE)",
        "    y = model(x)",
        "    n = sum(p.numel() for p in model.parameters())",
        '    print(f"output {tuple(y.shape)}, {n:,} parameters")',
        "",
    ]


def to_python(stack: Stack, style: str = "module", *, weights: str | None = None,
              classes: Sequence[str] | None = None, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> str:
    """Standalone Python source defining ``build_model()`` and ``build_loss()``.

    ``weights``: the name of the safetensors file that will lie beside the
    ``.py`` (``build_model(weights=...)`` and ``WEIGHTS``); ``classes``,
    ``mean``, ``std``: the class names and per-channel normalisation
    (``CLASSES``, ``MEAN``, ``STD``, ``preprocess``, ``classify``).
    """
    if style not in STYLES:
        raise ExportError(f"unknown style {style!r}; expected one of {', '.join(STYLES)}")
    report = checked_report(stack)
    extras = _Extras(stack, weights, classes, mean, std)
    lines = _header(stack, report, style)
    stdlib = (["import math"] if style == "functional" else []) + (["import os"] if weights is not None else [])
    if stdlib:
        lines[-2:-2] = [*stdlib, ""]
    if style == "module":
        lines += _module_body(report, weights is not None)
    else:
        lines += ["import torch.nn.functional as F"] + _functional_body(stack, report, weights is not None)
    code = "\n".join(lines + _footer(stack, report, extras))
    _check_code(code)
    return code


def _check_code(code: str) -> None:
    """The generated file must parse, and hold exactly the statements the generator writes: text from
    the stack reaches it only as literals, comments and docstrings, never as code."""
    import ast

    try:
        tree = ast.parse(code)
    except SyntaxError as exc:  # a generator bug: never write a file that does not parse
        raise ExportError(f"the generated code does not parse (line {exc.lineno}: {exc.msg}); "
                          f"this is a bug in cnnviz") from None
    allowed = (ast.Expr, ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.Assign, ast.If)
    for node in tree.body:
        if not isinstance(node, allowed) or (isinstance(node, ast.Expr) and node is not tree.body[0]):
            raise ExportError(f"the generated code holds an unexpected statement at line {node.lineno}; "
                              f"this is a bug in cnnviz")


_BLOCK_CLASSES = [
    "",
    "",
    "class Residual(nn.Module):",
    '    """body(x) + shortcut(x); an empty shortcut is the identity."""',
    "",
    "    def __init__(self, body: list, shortcut: list) -> None:",
    "        super().__init__()",
    "        self.body = nn.Sequential(*body)",
    "        self.shortcut = nn.Sequential(*shortcut)",
    "",
    "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
    "        return self.body(x) + self.shortcut(x)",
    "",
    "",
    "class Concat(nn.Module):",
    '    """torch.cat([branch(x) for branch in branches], dim=1); an empty branch is the identity."""',
    "",
    "    def __init__(self, branches: list) -> None:",
    "        super().__init__()",
    "        self.branches = nn.ModuleList(nn.Sequential(*branch) for branch in branches)",
    "",
    "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
    "        return torch.cat([branch(x) for branch in self.branches], dim=1)",
]


def _has_blocks(report: StackReport) -> bool:
    return any(r.is_block for r in report.layers)


def _note(r) -> str:
    note = f"  # {r.path}: -> {fmt_shape(r.output_shape)}"
    if r.label != r.type:
        note += f" ({text.for_comment(r.label)})"
    return note


def _module_items(reports, indent: str) -> list[str]:
    """The modules of one list, as the arguments of nn.Sequential (or of a block's list)."""
    lines = []
    for r in reports:
        if r.type == "Residual":
            lists = dict(r.inner)
            lines.append(f"{indent}Residual(")
            for name in ("body", "shortcut"):
                items = _module_items(lists[(name,)], indent + "        ")
                lines += [f"{indent}    {name}=[", *items, f"{indent}    ],"] if items else [f"{indent}    {name}=[],"]
            lines.append(f"{indent}),{_note(r)}")
        elif r.type == "Concat":
            lines += [f"{indent}Concat([", ]
            for _key, reports_k in r.inner:
                items = _module_items(reports_k, indent + "        ")
                lines += [f"{indent}    [", *items, f"{indent}    ],"] if items else [f"{indent}    [],"]
            lines.append(f"{indent}]),{_note(r)}")
        else:
            lines.append(f"{indent}nn.{r.type}({_call_args(r.type, r.resolved)}),{_note(r)}")
    return lines


def _module_body(report: StackReport, weights: bool = False) -> list[str]:
    lines = list(_BLOCK_CLASSES) if _has_blocks(report) else []
    if weights:
        lines += ["", "", "def build_model(weights: str | None = None) -> nn.Module:", _BUILD_DOC,
                  "    model = nn.Sequential("]
    else:
        lines += ["", "", "def build_model() -> nn.Module:", "    return nn.Sequential("]
    lines += _module_items(report.layers, "        ")
    lines.append("    )")
    if weights:
        lines += _load_lines(None)
    return lines


def _tag(r) -> str:
    """The layer's name in the functional style: its path with underscores (``w3``, ``w1_body_0``)."""
    return str(r.path).replace(".", "_")


class _Functional:
    """The functional style's __init__, reset_parameters and forward, written layer by layer."""

    def __init__(self) -> None:
        self.init: list[str] = []
        self.reset: list[str] = []
        self.fwd: list[str] = []
        self.keys: dict[str, str] = {}

    def layers(self, reports, indent: str = "        ") -> None:
        for r in reports:
            self.layer(r, indent)

    def layer(self, r, indent: str) -> None:
        p, i = r.resolved, _tag(r)
        self.fwd.append(f"{indent}# {r.path}: {r.type} -> {fmt_shape(r.output_shape)}")
        if r.type == "Residual":
            lists = dict(r.inner)
            self.fwd.append(f"{indent}x_in{i} = x")
            self.layers(lists[("body",)], indent)
            self.fwd += [f"{indent}x_body{i} = x", f"{indent}x = x_in{i}"]
            self.layers(lists[("shortcut",)], indent)
            self.fwd.append(f"{indent}x = x_body{i} + x")
        elif r.type == "Concat":
            self.fwd += [f"{indent}x_in{i} = x", f"{indent}outs{i} = []"]
            for _key, reports in r.inner:
                self.fwd.append(f"{indent}x = x_in{i}")
                self.layers(reports, indent)
                self.fwd.append(f"{indent}outs{i}.append(x)")
            self.fwd.append(f"{indent}x = torch.cat(outs{i}, dim=1)")
        elif r.type == "Conv2d":
            k = as_pair(p["kernel_size"])
            cin, cout, g = p["in_channels"], p["out_channels"], p["groups"]
            self.init.append(f"        self.w{i} = nn.Parameter(torch.empty({cout}, {cin // g}, {k[0]}, {k[1]}))")
            self.reset.append(f"        nn.init.kaiming_uniform_(self.w{i}, a=math.sqrt(5))")
            self.keys[f"{r.path}.weight"] = f"w{i}"
            if p["bias"]:
                self.init.append(f"        self.b{i} = nn.Parameter(torch.empty({cout}))")
                fan_in = (cin // g) * k[0] * k[1]
                self.reset.append(f"        nn.init.uniform_(self.b{i}, -1 / math.sqrt({fan_in}), "
                                  f"1 / math.sqrt({fan_in}))")
                self.keys[f"{r.path}.bias"] = f"b{i}"
            self.fwd += [indent + line.lstrip() for line in _conv_call(i, p, k)]
        elif r.type == "Linear":
            fin, fout = p["in_features"], p["out_features"]
            self.init.append(f"        self.w{i} = nn.Parameter(torch.empty({fout}, {fin}))")
            self.reset.append(f"        nn.init.kaiming_uniform_(self.w{i}, a=math.sqrt(5))")
            self.keys[f"{r.path}.weight"] = f"w{i}"
            bias = "None"
            if p["bias"]:
                self.init.append(f"        self.b{i} = nn.Parameter(torch.empty({fout}))")
                self.reset.append(f"        nn.init.uniform_(self.b{i}, -1 / math.sqrt({fin}), 1 / math.sqrt({fin}))")
                self.keys[f"{r.path}.bias"] = f"b{i}"
                bias = f"self.b{i}"
            self.fwd.append(f"{indent}x = F.linear(x, self.w{i}, {bias})")
        elif r.type in ("BatchNorm2d", "BatchNorm1d"):
            init_lines, call = _batchnorm(i, p)
            self.init += init_lines
            self.fwd += [indent + line[8:] for line in call]
            if p["affine"]:
                self.keys[f"{r.path}.weight"] = f"w{i}"
                if p["bias"]:
                    self.keys[f"{r.path}.bias"] = f"b{i}"
            if p["track_running_stats"]:
                self.keys.update({f"{r.path}.running_mean": f"mean{i}", f"{r.path}.running_var": f"var{i}",
                                  f"{r.path}.num_batches_tracked": f"seen{i}"})
        else:
            self.fwd.append(f"{indent}x = {_stateless_call(r.type, p, len(r.input_shape or ()) + 1)}")


def _functional_body(stack: Stack, report: StackReport, weights: bool = False) -> list[str]:
    cls = _identifier(stack.name)
    f = _Functional()
    f.layers(report.layers)
    init = [f"class {cls}(nn.Module):",
            f'    """{text.for_docstring(stack.name)} with explicit parameters and torch.nn.functional calls."""',
            "",
            "    def __init__(self) -> None:",
            "        super().__init__()", *f.init]
    reset = []
    if f.reset:
        init.append("        self.reset_parameters()")
        reset = ["", "    @torch.no_grad()", "    def reset_parameters(self) -> None:",
                 '        """The same initialisation as the nn layers use."""', *f.reset]
    fwd = ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:", *f.fwd, "        return x"]
    body = init + reset + fwd
    if not weights:
        return ["", "", *body, "", "", "def build_model() -> nn.Module:", f"    return {cls}()"]
    return ["", "", *body, "", "", "def build_model(weights: str | None = None) -> nn.Module:", _BUILD_DOC,
            f"    model = {cls}()", *_load_lines(f.keys)]




def _conv_call(i: str, p: dict[str, Any], k: tuple[int, int]) -> list[str]:
    bias = f"self.b{i}" if p["bias"] else "None"
    s, d, g = as_pair(p["stride"]), as_pair(p["dilation"]), p["groups"]
    pad = p["padding"]
    extra = ""
    if s != (1, 1):
        extra += f", stride={_lit(list(s)) if s[0] != s[1] else s[0]}"
    if d != (1, 1):
        extra += f", dilation={_lit(list(d)) if d[0] != d[1] else d[0]}"
    if g != 1:
        extra += f", groups={g}"
    mode = p["padding_mode"]
    if mode == "zeros":
        if pad not in (0, "valid", [0, 0]):
            extra = f", padding={_lit(pad)}" + extra
        return [f"        x = F.conv2d(x, self.w{i}, {bias}{extra})"]
    if pad == "same":
        pads = [((d[a] * (k[a] - 1)) // 2, d[a] * (k[a] - 1) - (d[a] * (k[a] - 1)) // 2) for a in range(2)]
    elif pad == "valid":
        pads = [(0, 0), (0, 0)]
    else:
        pads = [(v, v) for v in as_pair(pad)]
    # F.pad takes (left, right, top, bottom): width first.
    order = (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
    return [f"        x = F.pad(x, {order}, mode={mode!r})",
            f"        x = F.conv2d(x, self.w{i}, {bias}{extra})"]


def _batchnorm(i: str, p: dict[str, Any]) -> tuple[list[str], list[str]]:
    c = p["num_features"]
    init, call = [], []
    w = b = "None"
    if p["affine"]:
        init.append(f"        self.w{i} = nn.Parameter(torch.ones({c}))")
        w = f"self.w{i}"
        if p["bias"]:
            init.append(f"        self.b{i} = nn.Parameter(torch.zeros({c}))")
            b = f"self.b{i}"
    eps, momentum = p["eps"], p["momentum"]
    if p["track_running_stats"]:
        init += [f"        self.register_buffer('mean{i}', torch.zeros({c}))",
                 f"        self.register_buffer('var{i}', torch.ones({c}))",
                 f"        self.register_buffer('seen{i}', torch.tensor(0, dtype=torch.long))"]
        if momentum is None:
            call += ["        if self.training:",
                     f"            self.seen{i} += 1",
                     f"        factor = 1.0 / float(self.seen{i}) if self.training else 0.0"]
            mom = "factor"
        else:
            call += ["        if self.training:", f"            self.seen{i} += 1"]
            mom = repr(momentum)
        call.append(f"        x = F.batch_norm(x, self.mean{i}, self.var{i}, {w}, {b}, self.training, {mom}, {eps!r})")
    else:
        call.append(f"        x = F.batch_norm(x, None, None, {w}, {b}, True, 0.0, {eps!r})")
    return init, call


def _stateless_call(type_name: str, p: dict[str, Any], rank: int) -> str:
    if type_name == "ReLU":
        return "F.relu(x, inplace=True)" if p["inplace"] else "F.relu(x)"
    if type_name in ("ReLU6", "SiLU", "Hardswish", "Hardsigmoid"):
        return f"F.{type_name.lower()}(x{', inplace=True' if p['inplace'] else ''})"
    if type_name == "LeakyReLU":
        return f"F.leaky_relu(x, {p['negative_slope']!r}{', inplace=True' if p['inplace'] else ''})"
    if type_name == "ELU":
        return f"F.elu(x, {p['alpha']!r}{', inplace=True' if p['inplace'] else ''})"
    if type_name == "Identity":
        return "x"
    if type_name == "GELU":
        return "F.gelu(x)" if p["approximate"] == "none" else f"F.gelu(x, approximate={p['approximate']!r})"
    if type_name == "Sigmoid":
        return "torch.sigmoid(x)"
    if type_name == "Tanh":
        return "torch.tanh(x)"
    if type_name in ("Dropout", "Dropout2d"):
        fn = "dropout" if type_name == "Dropout" else "dropout2d"
        return f"F.{fn}(x, {p['p']!r}, self.training{', inplace=True' if p['inplace'] else ''})"
    if type_name == "Flatten":
        return f"torch.flatten(x, {p['start_dim']}, {p['end_dim']})"
    if type_name in ("Softmax", "LogSoftmax"):
        dim = p["dim"] if p["dim"] is not None else (0 if rank in (0, 1, 3) else 1)
        return f"F.{'softmax' if type_name == 'Softmax' else 'log_softmax'}(x, dim={dim})"
    if type_name == "MaxPool2d":
        k, s = p["kernel_size"], p["stride"]
        args = f"x, {_lit(k)}"
        args += f", stride={_lit(s)}" if s is not None else ""
        if p["padding"] not in (0, [0, 0]):
            args += f", padding={_lit(p['padding'])}"
        if p["dilation"] not in (1, [1, 1]):
            args += f", dilation={_lit(p['dilation'])}"
        if p["ceil_mode"]:
            args += ", ceil_mode=True"
        return f"F.max_pool2d({args})"
    if type_name == "AvgPool2d":
        args = f"x, {_lit(p['kernel_size'])}"
        args += f", stride={_lit(p['stride'])}" if p["stride"] is not None else ""
        if p["padding"] not in (0, [0, 0]):
            args += f", padding={_lit(p['padding'])}"
        if p["ceil_mode"]:
            args += ", ceil_mode=True"
        if not p["count_include_pad"]:
            args += ", count_include_pad=False"
        if p["divisor_override"] is not None:
            args += f", divisor_override={p['divisor_override']}"
        return f"F.avg_pool2d({args})"
    if type_name == "AdaptiveAvgPool2d":
        return f"F.adaptive_avg_pool2d(x, {_lit(p['output_size'])})"
    raise ExportError(f"no functional form for {type_name}")  # a catalogue entry without an exporter
