"""Everything cnnviz knows without Qt, in layers that depend only downwards:

- :mod:`.model` (standard library): the layer catalogue, the stack and its edits, stack files,
  safe outputs and text.
- :mod:`.shapes` (standard library): shape inference by PyTorch's rules, lints, the summary.
- :mod:`.data` (numpy): bundled data sets, generated shapes, the person's images.
- :mod:`.run` (torch): building, devices, the training session, probes, weights, memory.
- :mod:`.export` (torch only for ONNX): PyTorch code and ONNX models.

``pyproject.toml``'s import-linter contracts hold the order; nothing here imports Qt.
"""
