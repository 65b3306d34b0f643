"""The live window the run tests share."""
from __future__ import annotations

import pytest

from tests.app.run_helpers import digits_stack, wait_probe


@pytest.fixture
def live(make_window, examples, qtbot):
    """``live(path=None, stack=None, **training)``: the live window with its first forward pass shown, on the
    file at ``path``, on ``stack``, or on the digits net (fast) with ``training`` settings."""
    def make(path=None, stack=None, **training):
        if path is not None:
            window = make_window(path, live=True)
        else:
            window = make_window(stack=stack if stack is not None else digits_stack(examples, **training),
                                 live=True)
        wait_probe(qtbot, window.runner)
        return window
    return make
