"""The sidebar: layer palette, stack list, property editor, details panel."""
from .details import DetailsPanel
from .palette import Palette
from .properties import PropertyEditor
from .stack_list import StackListView, StackPanel
from .stack_model import StackListModel

__all__ = ["DetailsPanel", "Palette", "PropertyEditor", "StackListModel", "StackListView", "StackPanel"]
