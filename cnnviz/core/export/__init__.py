"""A stack as something other tools run: PyTorch code (:mod:`.python`, generated without torch; with its
trained weights beside it, :mod:`.bundle`) and ONNX models (:mod:`.onnx`, torch and its exporters
imported when an export runs)."""
from cnnviz.core.export.bundle import WrittenCode, check_targets, weights_beside, write_python_with_weights
from cnnviz.core.export.onnx import WrittenModel, to_onnx
from cnnviz.core.export.python import STYLES, ExportError, to_python

__all__ = ["STYLES", "ExportError", "WrittenCode", "WrittenModel", "check_targets", "to_onnx", "to_python",
           "weights_beside", "write_python_with_weights"]
