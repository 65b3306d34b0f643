"""Running the stack live in the window: a worker thread that owns torch, its controls, and the views it feeds.

- :mod:`.worker`: :class:`~.worker.RunWorker`, the thread with the session and the training loop.
- :mod:`.controller`: :class:`~.controller.RunController`, the GUI-thread side: edits, actions, results.
- :mod:`.hub`: :class:`~.hub.ViewsHub`, the views a probe feeds.
- :mod:`.toolbar`: the device, data, sample and training-settings widgets and the Run actions.
- :mod:`.messages`: what the two threads hand each other; :mod:`.services`: what the runner needs of the window.

The Qt-free pieces (the probe for the views, the mailbox, weights carried across builds, the optimizer
warm-up) are :mod:`cnnviz.core.run.live`. :func:`attach` is what the window calls. Importing this package
imports no torch.
"""
from __future__ import annotations


def attach(window, **options):
    """Give ``window`` its run views, toolbar and worker; the worker starts once the window is shown.

    The one place that knows the window: it picks out what the runner uses (:mod:`.services`).
    """
    from cnnviz.app.runner.controller import RunController

    files = window.files
    options.setdefault("stack_path", lambda: files.path)
    runner = RunController(window.document, window.history, shell=window, places=window, dialogs=window.dialogs,
                           settings=window.settings, guards=files.guards,
                           show_message=window.statusBar().showMessage, parent=window, **options)
    files.stackReplaced.connect(runner.stack_opened)  # NAME.safetensors beside an opened stack is loaded
    files.saved.connect(runner.stack_saved)           # and written beside a saved one, once trained
    runner.workbench.reopenRequested.connect(files.new_stack)   # a recorded run, as a new unsaved stack
    return runner


__all__ = ["attach"]
