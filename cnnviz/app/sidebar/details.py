"""What the shape engine knows about the selected row, for reading: error and fix, formulas, sizes.

For a teacher (JOURNEYS 3) this is the panel that shows the output-size
formula with the numbers filled in and the receptive field growing.
"""
from __future__ import annotations

from html import escape
from typing import Callable

from PySide6.QtWidgets import QTextBrowser, QWidget

from cnnviz.app.sidebar import display as fmt
from cnnviz.core.model.layers import CATALOGUE, LOSSES, as_pair
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import Edit, Layer, Stack, StackDocument
from cnnviz.core.model.units import format_bytes
from cnnviz.core.shapes import LayerReport, StackReport, fmt_shape

_CSS = """
body { margin: 4px; }
h2 { margin: 0 0 2px 0; }
.doc { color: palette(placeholder-text); margin: 0 0 6px 0; }
.box { margin: 4px 0 6px 0; }
.label { color: palette(placeholder-text); padding-right: 12px; }
pre { margin: 2px 0 6px 0; white-space: pre-wrap; }
"""


def _box(colour: str, tint: str, mark: str, title: str, text: str) -> str:
    return (f"<table class='box' width='100%' cellpadding='6' cellspacing='0' "
            f"style='background-color:{tint}; border-left: 4px solid {colour};'><tr><td>"
            f"<span style='color:{colour}'><b>{mark} {escape(title)}</b></span><br>{escape(text)}</td></tr></table>")


def error_box(text: str) -> str:
    return _box("#c62828", "#fdecea", "✗", "This layer cannot work", text)


def warning_box(text: str) -> str:
    return _box("#9a6700", "#fff4d6", "⚠", "Warning", text)


def torch_call(layer: Layer, report: LayerReport | None) -> str:
    """How torch would be asked for this layer: given keywords plus inferred counts."""
    spec = CATALOGUE.get(layer.type)
    if spec is None:
        return ""
    args = []
    for p in spec.params:
        if p.name in layer.params:
            args.append(f"{p.name}={_py(layer.params[p.name])}")
        elif p.inferred and report is not None and report.resolved.get(p.name) is not None:
            args.append(f"{p.name}={report.resolved[p.name]}")
    return f"nn.{layer.type}({', '.join(args)})"


def _py(value) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(_py(v) for v in value) + ")"
    return repr(value)


def _rows(pairs: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td class='label'>{escape(k)}</td><td>{v}</td></tr>" for k, v in pairs)
    return f"<table cellspacing='0' cellpadding='2'>{body}</table>"


MAX_FOOTPRINT = 31  # pixels per side drawn as a grid; wider kernels are described in words


def kernel_footprint(r: LayerReport) -> tuple[str, str] | None:
    """(title, text grid) of where a Conv2d's or pooling layer's taps fall in the input it reads:
    ■ a tap, · a pixel skipped by the dilation. None for other layers or kernels too wide to draw."""
    if r.type not in ("Conv2d", "MaxPool2d", "AvgPool2d") or not r.resolved:
        return None
    k = as_pair(r.resolved.get("kernel_size"))
    d = as_pair(r.resolved.get("dilation", 1))
    if not all(isinstance(v, int) for v in k + d):
        return None
    span = [d[a] * (k[a] - 1) + 1 for a in range(2)]
    what = "kernel" if r.type == "Conv2d" else "window"
    title = f"The {what}'s footprint on the maps it reads: {k[0]}×{k[1]} taps spanning {span[0]}×{span[1]} pixels"
    if max(span) > MAX_FOOTPRINT:
        return title, f"(too wide to draw: taps every {d[0]}×{d[1]} pixels)"
    rows = []
    for y in range(span[0]):
        rows.append(" ".join("■" if y % d[0] == 0 and x % d[1] == 0 else "·" for x in range(span[1])))
    return title, "\n".join(rows)


def _wrapped_formula(line: str) -> str:
    """'H_out = ⌊(H + 2p …) / s⌋ + 1 = ⌊(28 + …) / 1⌋ + 1 = 28' on two lines: the rule, then its numbers."""
    parts = line.split(" = ")
    if len(parts) < 3:
        return line
    indent = " " * (len(parts[0]) + 1)
    numbers = " = ".join(parts[2:]).replace("; ", f";\n{indent}  ")  # a remark after the numbers: its own line
    return f"{parts[0]} = {parts[1]}\n{indent}= " + numbers


HIDE_INTRO = "cnnviz:hide-intro"
FIX_LINK = "cnnviz:fix:"  # + "<layer path>:<n>": apply the n-th fix offered for that layer


def fixes_html(r: LayerReport) -> str:
    """One link per fix the core proposes for the layer: clicking applies it (undoable)."""
    if not r.fixes:
        return ""
    links = " · ".join(f"<a href='{FIX_LINK}{r.path}:{n}' title='{escape(str(fix), quote=True)}'>"
                       f"Apply: {escape(fix.label)}</a>" for n, fix in enumerate(r.fixes))
    return f"<p class='fixes' style='margin:4px 0 8px 0'>{links}</p>"


def intro_box(stack: Stack) -> str:
    """The opened stack's description above a layer's details, with a link that hides it."""
    name = f" “{escape(stack.name)}”" if stack.name else ""
    return (f"<table class='box' width='100%' cellpadding='6' cellspacing='0' "
            f"style='background-color:#e8f0fe; border-left: 4px solid #1a73e8;'><tr><td>"
            f"<span style='color:#1a73e8'><b>About{name}</b></span> "
            f"<a href='{HIDE_INTRO}'>Hide</a><br>{escape(stack.description)}</td></tr></table>")


BLOCK_DOCS = {
    "Residual": "body(x) + shortcut(x): the body learns what to add to its input. An empty shortcut is the "
                "identity, so the body must keep the shape; a projection shortcut (a 1×1 Conv2d) makes them agree.",
    "Concat": "torch.cat([branch(x) for branch in branches], dim=1): every branch reads the same input; the "
              "outputs are stacked on the channels (the features after Flatten). An empty branch passes x.",
}


def layer_html(stack: Stack, report: StackReport, where: int | LayerPath) -> str:
    path = LayerPath.of(where)
    layer = stack.layer_at(path)
    try:
        r = report.at(path)
    except IndexError:
        r = None
    spec = CATALOGUE.get(layer.type)
    title = f"{path} · {escape(layer.type)}" + (f" “{escape(layer.name)}”" if layer.name else "")
    out = [f"<h2>{title}</h2>"]
    if spec is not None:
        out.append(f"<p class='doc'>{escape(spec.doc)}</p>")
    elif layer.is_block:
        out.append(f"<p class='doc'>{escape(BLOCK_DOCS.get(layer.type, ''))}</p>")
    if r is None or not r.reachable:
        first = report.first_error
        culprit = f"Layer {first.index} ({first.label})" if first is not None else "An earlier layer"
        out.append(_box("#757575", "#f0f0f0", "○", "Not reachable",
                        f"{culprit} fails, so nothing arrives here. Fix that layer first; this one is checked as "
                        f"soon as its input has a shape."))
        if not layer.is_block:
            out.append(f"<pre>{escape(torch_call(layer, None))}</pre>")
        return "".join(out)
    if r.error:
        out.append(error_box(r.error))
    for w in r.warnings:
        out.append(warning_box(w))
    out.append(fixes_html(r))
    pairs = [("shape", f"<b>{escape(fmt_shape(r.input_shape))} → {escape(fmt_shape(r.output_shape))}</b>"
                       + ("" if r.ok else " (fails)"))]
    if r.ok:
        pairs.append(("parameters", f"{r.params:,}" + (f" ({r.trainable:,} trainable)" if r.trainable != r.params
                                                      else "")))
        pairs.append(("multiply-adds", f"{r.macs:,} per sample" if r.macs else "0"))
        n = r.activation_elements
        pairs.append(("activation", f"{n:,} values, {format_bytes(4 * n)} in float32 per sample"))
        rf = r.receptive_field
        if rf is not None:
            size = fmt.pair_text(list(rf.size))
            jump = "×".join(f"{j:g}" for j in rf.jump) if rf.jump[0] != rf.jump[1] else f"{rf.jump[0]:g}"
            start = ", ".join(f"{s:g}" for s in rf.start)
            pairs.append(("receptive field", f"{size} px of the input; neighbouring outputs {jump} px apart; "
                                             f"the first centred at ({start})"))
    out.append(_rows(pairs))
    footprint = kernel_footprint(r)
    if footprint:
        out.append(f"<p style='margin:8px 0 0 0'><b>{footprint[0]}</b></p>")
        out.append("<pre>" + escape(footprint[1]) + "</pre>")
    if r.formula:
        out.append("<p style='margin:8px 0 0 0'><b>How the size is computed</b></p>")
        out.append("<pre>" + escape("\n".join(_wrapped_formula(line) for line in r.formula)) + "</pre>")
    if r.is_block:
        out.append(_block_lists(r))
        return "".join(out)
    out.append("<p style='margin:8px 0 0 0'><b>In PyTorch</b></p>")
    out.append(f"<pre>{escape(torch_call(layer, r))}</pre>")
    return "".join(out)


def _block_lists(r: LayerReport) -> str:
    """A block's lists: each one's layers and shapes, so the merge can be read at a glance."""
    from cnnviz.app.sidebar.stack_model import list_title

    lines = []
    for key, reports in r.inner:
        flow = " → ".join(f"{x.label} {fmt_shape(x.output_shape)}" for x in reports) or "identity (x itself)"
        lines.append(f"{list_title(key)}: {fmt_shape(r.input_shape)} → {flow}")
    return "<p style='margin:8px 0 0 0'><b>Inside</b></p><pre>" + escape("\n".join(lines)) + "</pre>"


def input_html(stack: Stack, report: StackReport) -> str:
    out = [f"<h2>{escape(stack.name)}</h2>"]
    if stack.description:
        out.append(f"<p class='doc'>{escape(stack.description)}</p>")
    bad = report.first_error
    if bad is not None:
        out.append(_box("#c62828", "#fdecea", "✗", f"Layer {bad.index} ({bad.label}) cannot work", bad.error or ""))
    elif report.loss.error:
        out.append(_box("#c62828", "#fdecea", "✗", "The loss cannot work", report.loss.error))
    pairs = [("input", escape(fmt_shape(stack.input.shape))),
             ("output", escape(fmt_shape(report.output_shape)) if report.output_shape is not None else "—"),
             ("layers", str(len(stack.layers))),
             ("parameters", f"{report.total_params:,} ({report.trainable_params:,} trainable)"),
             ("multiply-adds", f"{report.total_macs:,} per sample"),
             ("loss", escape(stack.loss.type))]
    if report.num_classes:
        pairs.append(("classes", str(report.num_classes)))
    out.append(_rows(pairs))
    return "".join(out)


def loss_html(stack: Stack, report: StackReport) -> str:
    spec = LOSSES.get(stack.loss.type)
    out = [f"<h2>Loss · {escape(stack.loss.type)}</h2>"]
    if spec is not None:
        out.append(f"<p class='doc'>{escape(spec.doc)}</p>")
    if report.loss.error:
        out.append(_box("#c62828", "#fdecea", "✗", "The loss cannot work", report.loss.error))
    for w in report.loss.warnings:
        out.append(warning_box(w))
    args = ", ".join(f"{k}={_py(v)}" for k, v in stack.loss.params.items())
    out.append(f"<pre>nn.{escape(stack.loss.type)}({escape(args)})</pre>")
    return "".join(out)


class DetailsPanel(QTextBrowser):
    """Rich text about the selected row; follows the document."""

    def __init__(self, document: StackDocument, parent: QWidget | None = None,
                 push: Callable[[Edit], bool] | None = None) -> None:
        super().__init__(parent)
        self.stack_document = document
        self._push = push  # History.push_edit: how an applied fix reaches the stack (None: fixes are not offered)
        self.kind, self.index = "", -1
        self.intro = False  # the stack's description shown above a layer's or the loss's details
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._link)
        self.document().setDefaultStyleSheet(_CSS)
        unsubscribe = document.subscribe(lambda change: self.refresh())
        self.destroyed.connect(lambda *_: unsubscribe())
        self.refresh()

    def show_selection(self, kind: str, index: int | LayerPath = -1) -> None:
        """Show the selected row: a layer by its index or, inside a block, its path."""
        self.kind, self.index = kind, index
        self.refresh()

    def show_intro(self) -> None:
        """A stack was opened: show its description (if any) above whatever is selected, until hidden."""
        self.intro = bool(self.stack_document.stack.description)
        self.refresh()
        self.verticalScrollBar().setValue(0)

    def hide_intro(self) -> None:
        self.intro = False
        self.refresh()

    def _link(self, url) -> None:
        text = url.toString()
        if text == HIDE_INTRO:
            self.hide_intro()
        elif text.startswith(FIX_LINK):
            where, _, n = text[len(FIX_LINK):].rpartition(":")
            if n.isdigit():
                self.apply_fix(where, int(n))

    def apply_fix(self, where: int | str | LayerPath, n: int) -> bool:
        """Apply the ``n``-th fix offered for the layer at ``where`` through the history (Ctrl+Z undoes it)."""
        from cnnviz.core.shapes.inference import fix_edit

        push = self._push
        try:
            fixes = self.stack_document.report.at(LayerPath.of(where)).fixes
        except (IndexError, ValueError, TypeError):
            return False
        if push is None or not 0 <= n < len(fixes):
            return False
        return push(fix_edit(self.stack_document.stack, where, fixes[n]))

    def html(self) -> str:
        stack = self.stack_document.stack
        report = self.stack_document.report  # inferred once per change by the document
        intro = intro_box(stack) if self.intro and stack.description else ""
        if self.kind == "layer":
            try:
                stack.layer_at(LayerPath.of(self.index))
            except (IndexError, ValueError, TypeError):
                return input_html(stack, report)
            return intro + layer_html(stack, report, self.index)
        if self.kind == "loss":
            return intro + loss_html(stack, report)
        return input_html(stack, report)  # the description is part of the input row's details

    def refresh(self) -> None:
        bar = self.verticalScrollBar()
        pos = bar.value()
        self.setHtml(self.html())
        bar.setValue(pos)
