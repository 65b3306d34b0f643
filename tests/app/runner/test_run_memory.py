"""The live window refuses a run that cannot fit in memory at once, with the engine's sentence, and
before it reads the data at that size (issue 8, item 3)."""
from __future__ import annotations

import pytest

from cnnviz.core import data
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import memory
from tests.app.run_helpers import digits_stack, wait_probe

HUGE = Stack("Huge photos", InputSpec(3, 2048, 2048), (
    Layer("Conv2d", {"out_channels": 8, "kernel_size": 4, "stride": 4}), Layer("ReLU"),
    Layer("AdaptiveAvgPool2d", {"output_size": 4}), Layer("Flatten"), Layer("Linear", {"out_features": 10})),
    training=TrainingConfig(data="digits", device="cpu", batch_size=4))


@pytest.fixture
def loads(monkeypatch):
    """The input shapes data.load is asked for, in order; the CPU has 1.5 GiB free."""
    asked = []
    real = data.load

    def load(name, shape, *args, **kwargs):
        asked.append(tuple(shape))
        return real(name, shape, *args, **kwargs)

    monkeypatch.setattr(data, "load", load)
    monkeypatch.setattr(memory, "cpu_free_bytes", lambda: 3 << 29)
    return asked


def test_a_run_too_big_for_memory_is_a_message_before_its_data_is_read(make_window, examples, qtbot, dialogs, loads):
    window = make_window(stack=HUGE, live=True)
    qtbot.waitUntil(lambda: window.runner.state == "refused", timeout=20_000)
    hint = window.runner.hub.maps.hint_text
    assert "training Huge photos at batch 4 needs about 2.6 GiB" in hint
    assert "the CPU has 1.5 GiB free" in hint and "use a smaller input" in hint
    assert (3, 2048, 2048) not in loads  # refused before the loader made 1 GiB of images
    assert not window.runner.toolbar.train_action.isEnabled()
    assert not dialogs.errors and not dialogs.exceptions
    window.history.replace_all(digits_stack(examples))  # a stack that fits runs as before
    wait_probe(qtbot, window.runner)
