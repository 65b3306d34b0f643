"""The stack as data, standard library only: what a network is, before any shape or tensor.

- :mod:`.layers`: the catalogue, one declarative entry per ``torch.nn`` class.
- :mod:`.validate`: one keyword value against its entry.
- :mod:`.stack`: :class:`Stack` (immutable), its edits, and the :class:`StackDocument` that applies them.
- :mod:`.files`: reading and writing ``.cnnviz`` files (SPEC §1).
- :mod:`.outputs`: the one way any output is written (never over the input, atomic, the umask).
- :mod:`.text`: text from a file made safe for a terminal, a comment, a docstring.
- :mod:`.assets`: the files shipped inside the package (examples, data, icons).
"""
from cnnviz.core.model.files import StackFileError
from cnnviz.core.model.layers import CATALOGUE, LOSSES, LayerSpec, Param
from cnnviz.core.model.outputs import OutputRefused
from cnnviz.core.model.stack import Edit, InputSpec, Layer, Loss, Stack, StackDocument, TrainingConfig, config_with

__all__ = ["CATALOGUE", "LOSSES", "Edit", "InputSpec", "Layer", "LayerSpec", "Loss", "OutputRefused", "Param",
           "Stack", "StackDocument", "StackFileError", "TrainingConfig", "config_with"]
