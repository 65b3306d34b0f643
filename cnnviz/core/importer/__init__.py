"""Models from other tools as stacks: :mod:`.onnx` reads an ONNX model (data only, no code runs) into a
:class:`~cnnviz.core.model.stack.Stack` and its weights (numpy), and writes them as ``STACK.cnnviz`` and
``STACK.safetensors`` (torch imported only when the weights are written)."""
from cnnviz.core.importer.onnx import (
    MAX_FILE_BYTES,
    MAX_NODES,
    MAX_PARAMETERS,
    SUPPORTED_OPS,
    Imported,
    ImportRefused,
    check_targets,
    read,
    read_bytes,
    write,
)

__all__ = ["MAX_FILE_BYTES", "MAX_NODES", "MAX_PARAMETERS", "SUPPORTED_OPS", "ImportRefused", "Imported",
           "check_targets", "read", "read_bytes", "write"]
