"""The learning-rate schedule in the window: the toolbar's picker is an undoable edit, and on the cosine
schedule training pauses by itself where the rate reaches 0."""
from __future__ import annotations

from tests.app.run_helpers import spin, wait_probe, wait_state


def choose(box, text: str) -> None:
    """Pick ``text`` in a combo box as a person does (``activated`` comes only from a person's choice)."""
    index = box.findText(text)
    assert index >= 0, text
    box.setCurrentIndex(index)
    box.activated.emit(index)


def test_choosing_cosine_is_an_undoable_edit_of_the_training_block(live, qtbot):
    window = live()
    toolbar = window.runner.toolbar
    box = toolbar.schedule_box
    assert [box.itemText(i) for i in range(box.count())] == ["constant", "cosine"]
    assert box.currentText() == "constant" and window.document.stack.training.schedule == "constant"
    assert "half cosine from lr to 0 over the training block's steps (1,500)" in box.toolTip()
    choose(box, "cosine")
    assert window.document.stack.training.schedule == "cosine" and window.isWindowModified()
    assert window.undo_action.text().endswith("Change schedule")
    snap = wait_probe(qtbot, window.runner)  # the session is built again on the cosine schedule
    assert "on a cosine schedule to 0 at step 1,500" in window.runner.built.description
    assert snap.probe.step == 0
    window.history.undo()
    assert window.document.stack.training.schedule == "constant" and box.currentText() == "constant"
    window.history.redo()
    assert box.currentText() == "cosine"


def test_on_the_cosine_schedule_training_pauses_by_itself_at_the_steps(live, qtbot):
    window = live(schedule="cosine", steps=40)
    runner = window.runner
    assert runner.toolbar.schedule_box.currentText() == "cosine"
    runner.toolbar.train_action.trigger()
    qtbot.waitUntil(lambda: runner.state == "paused" and runner.last_progress is not None
                    and runner.last_progress.step == 40, timeout=30_000)
    message = window.statusBar().currentMessage()
    assert message == "The cosine schedule ended at step 40 (lr 0). Reset to train again, or choose constant."
    qtbot.waitUntil(lambda: "the cosine schedule ended" in window.status_fields["run"].text(), timeout=5000)
    window.statusBar().clearMessage()
    runner.toolbar.train_action.trigger()  # past the end: no step is taken, and it says why again
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The cosine schedule ended"),
                    timeout=5000)
    spin(200)
    assert runner.state == "paused" and runner.last_progress.step == 40
    runner.forward()
    snap = wait_probe(qtbot, runner, lambda s: s.probe.step == 40)
    assert snap.probe.step == 40
    choose(runner.toolbar.schedule_box, "constant")  # mid-session: built again, the trained weights kept
    wait_probe(qtbot, runner)
    runner.step()
    wait_probe(qtbot, runner, lambda s: s.probe.step == 41)
    assert runner.state == "paused"


def test_changing_the_schedule_while_training_pauses_and_builds_again(live, qtbot):
    window = live()
    runner = window.runner
    runner.train()
    wait_state(qtbot, runner, "running")
    qtbot.waitUntil(lambda: runner.last_progress is not None and runner.last_progress.step >= 10, timeout=20_000)
    choose(runner.toolbar.schedule_box, "cosine")
    snap = wait_probe(qtbot, runner)
    assert runner.state == "paused" and snap.probe.step >= 10  # the step count goes on with the kept weights
    assert window.document.stack.training.schedule == "cosine"
