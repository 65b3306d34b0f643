"""Running the stack live in the window: a worker thread that owns torch, its controls, and the views it feeds.

- :mod:`.worker`: :class:`~.worker.RunWorker`, the thread with the session and the training loop.
- :mod:`.controller`: :class:`~.controller.RunController`, the GUI-thread side: edits, actions, results.
- :mod:`.toolbar`: the device, data, sample and training-settings widgets and the Run actions.

:func:`attach` is what the window calls. Importing this package imports no torch.
"""
from __future__ import annotations


def attach(window, **options):
    """Give ``window`` its run views, toolbar and worker; the worker starts once the window is shown."""
    from cnnviz.app.runner.controller import RunController

    return RunController(window, **options)


__all__ = ["attach"]
