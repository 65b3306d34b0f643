"""The stack as data, standard library only: what a network is, before any shape or tensor.

- :mod:`.layers`: the catalogue, one declarative entry per ``torch.nn`` class.
- :mod:`.validate`: one keyword value against its entry.
- :mod:`.paths`: :class:`LayerPath`, where a layer sits (an index today, ``3.body.1`` once blocks land).
- :mod:`.stack`: :class:`Stack` (immutable), its edits, and the :class:`StackDocument` that applies them
  and tells its subscribers with a :class:`StackChange`.
- :mod:`.files`: reading and writing ``.cnnviz`` files (SPEC §1).
- :mod:`.outputs`: the one way any output is written (never over the input, atomic, the umask).
- :mod:`.text`: text from a file made safe for a terminal, a comment, a docstring.
- :mod:`.assets`: the files shipped inside the package (examples, data, icons).
"""
from cnnviz.core.model.files import StackFileError
from cnnviz.core.model.layers import CATALOGUE, LOSSES, LayerSpec, Param
from cnnviz.core.model.outputs import OutputRefused
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import (
    Edit,
    InputSpec,
    Layer,
    Loss,
    Stack,
    StackChange,
    StackDocument,
    TrainingConfig,
    config_with,
)

__all__ = ["CATALOGUE", "LOSSES", "Edit", "InputSpec", "Layer", "LayerPath", "LayerSpec", "Loss", "OutputRefused",
           "Param", "Stack", "StackChange", "StackDocument", "StackFileError", "TrainingConfig", "config_with"]
