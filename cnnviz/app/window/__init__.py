"""The window: the main window's wiring, its dialogs, settings, error reporting, file-open events
from the desktop, and the self-test (``cnnviz --self-test``)."""
