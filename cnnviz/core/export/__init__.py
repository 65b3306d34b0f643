"""A stack as something other tools run: PyTorch code (:mod:`.python`, generated without torch) and
ONNX models (:mod:`.onnx`, torch and its exporters imported when an export runs)."""
from cnnviz.core.export.onnx import WrittenModel, to_onnx
from cnnviz.core.export.python import STYLES, ExportError, to_python

__all__ = ["STYLES", "ExportError", "WrittenModel", "to_onnx", "to_python"]
