"""What the status bar says about a stack: whether it can run, in one line, with its colour. No Qt."""
from __future__ import annotations

from dataclasses import dataclass

from cnnviz.core.shapes import StackReport, fmt_shape

ERROR_STYLE = "color: #c62828; font-weight: bold;"
WARNING_STYLE = "color: #9a6700;"
OK_STYLE = "color: #2e7d32;"


@dataclass(frozen=True)
class Validity:
    """The validity field: its text, its tooltip and its style sheet."""

    text: str
    tip: str
    style: str


def validity(report: StackReport) -> Validity:
    """``✗ layer 6 (MaxPool2d) cannot work``, ``✗ the loss cannot work``, ``⚠ 1×28×28 → 10, 2 warnings``
    or ``✓ 1×28×28 → 10``."""
    bad = report.first_error
    if bad is not None:
        return Validity(f"✗ layer {bad.index} ({bad.type}) cannot work",
                        f"{bad.error}\n\nClick (or F8) to select it.", ERROR_STYLE)
    if report.loss.error:
        return Validity("✗ the loss cannot work", report.loss.error, ERROR_STYLE)
    warned = sum(1 for r in report.layers if r.warnings) + (1 if report.loss.warnings else 0)
    flow = f"{fmt_shape(report.input_shape)} → {fmt_shape(report.output_shape)}"
    if warned:  # it runs, but not as it should: no green tick beside a warning
        return Validity(f"⚠ {flow}, {warned} warning{'s' if warned != 1 else ''}",
                        "Every layer works. Warnings are marked ⚠ in the stack.", WARNING_STYLE)
    return Validity(f"✓ {flow}", "Every layer works.", OK_STYLE)


def params_text(report: StackReport) -> tuple[str, str]:
    """The parameter field: ``61,706 parameters`` and its tooltip."""
    return (f"{report.total_params:,} parameters",
            f"{report.trainable_params:,} trainable; {report.total_macs:,} multiply-adds per sample")
