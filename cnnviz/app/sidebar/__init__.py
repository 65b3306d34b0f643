"""The sidebar: layer palette, stack list, property editor, details panel."""
from cnnviz.app.sidebar.details import DetailsPanel
from cnnviz.app.sidebar.palette import Palette
from cnnviz.app.sidebar.properties import PropertyEditor
from cnnviz.app.sidebar.stack_list import StackListView
from cnnviz.app.sidebar.stack_model import StackListModel
from cnnviz.app.sidebar.stack_panel import StackPanel

__all__ = ["DetailsPanel", "Palette", "PropertyEditor", "StackListModel", "StackListView", "StackPanel"]
