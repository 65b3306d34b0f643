"""The document the window edits: the undo history over the core's stack, the file controller
(open, save, recent files, autosave and recovery) and the export menu's work."""
