"""The learning-rate schedule (``training.schedule``): the engine's rate against PyTorch's own CosineAnnealingLR.

Each comparison steps a real ``torch.optim.lr_scheduler.CosineAnnealingLR``
alongside: its rates, and a session whose optimizer that scheduler drives,
which must reach the weights of the session that follows the schedule itself.
"""
import math

import numpy as np
import pytest
import torch

from cnnviz.core import data
from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig, scheduled_lr
from cnnviz.core.run import engine, training
from cnnviz.core.run.faults import NonFiniteError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STACK = Stack("tiny", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("ReLU"),
    Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"), Layer("Linear", {"out_features": 10})))


def synthetic(n=64, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    classes = tuple(str(i) for i in range(10))

    def part():
        x = (rng.random((n, 1, 8, 8), dtype=np.float32) * scale).astype(np.float32)
        return data.Dataset(x, rng.integers(0, 10, n).astype(np.int64), classes)

    return data.DataSplit("synthetic", part(), part(), classes, "test data", (0.0,), (1.0,))


def session(scale=1.0, **kw):
    base = dict(device="cpu", lr=0.05, batch_size=16, seed=0, steps=12, schedule="cosine")
    base.update(kw)
    return engine.Session(STACK, TrainingConfig(**base), data=synthetic(scale=scale))


def torch_rates(lr, horizon, n):
    """The rates a real CosineAnnealingLR(T_max=horizon, eta_min=0) gives steps 0 … n-1."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=horizon, eta_min=0.0)
    rates = []
    for _ in range(n):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("lr, horizon", [(0.1, 7), (1e-3, 50), (0.3, 1), (2.0, 500)])
def test_the_cosine_rate_is_torchs_cosine_annealing(lr, horizon):
    ours = [scheduled_lr(lr, "cosine", t, horizon) for t in range(horizon + 1)]
    assert ours == pytest.approx(torch_rates(lr, horizon, horizon + 1), rel=1e-9, abs=1e-15)
    assert ours[0] == lr and ours[-1] == pytest.approx(0.0, abs=1e-15)
    assert [scheduled_lr(lr, "cosine", t, horizon) for t in (horizon + 1, horizon * 3)] == [ours[-1]] * 2
    assert {scheduled_lr(lr, "constant", t, horizon) for t in range(horizon + 3)} == {lr}


def test_an_unknown_schedule_is_an_error():
    with pytest.raises(ValueError, match="expected one of constant, cosine"):
        scheduled_lr(0.1, "linear", 0, 10)


def test_each_step_uses_the_rate_torchs_scheduler_gives_it():
    s = session()
    expected = torch_rates(0.05, 12, 12)
    used, announced = [], []
    for _ in range(12):
        announced.append(s.lr_now)
        s.step()
        used.append(s.optimizer.param_groups[0]["lr"])  # the rate the step just taken used
    assert used == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert announced == used
    assert s.lr_now == pytest.approx(0.0, abs=1e-15) and s.schedule_ended
    assert s.lr == 0.05  # the base rate stays


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_session_on_the_schedule_reaches_the_weights_torchs_scheduler_gives(optimizer):
    ours = session(optimizer=optimizer)
    driven = session(optimizer=optimizer, schedule="constant")  # the rate left to torch's scheduler
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(driven.optimizer, T_max=12, eta_min=0.0)
    moved = False
    for _ in range(12):
        ours.step()
        driven.step()
        scheduler.step()
    start = session(optimizer=optimizer).model.state_dict()
    for key, value in driven.model.state_dict().items():
        mine = ours.model.state_dict()[key]
        assert torch.allclose(mine, value, rtol=1e-5, atol=1e-7), key
        moved = moved or not torch.equal(mine, start[key])
    assert moved
    constant = session(optimizer=optimizer, schedule="constant")
    for _ in range(12):
        constant.step()
    assert not all(torch.equal(v, constant.model.state_dict()[k]) for k, v in ours.model.state_dict().items())


def test_the_horizon_is_the_runs_steps_unless_set_and_a_reset_starts_again():
    s = session(steps=40)
    assert s.horizon == 40 and "on a cosine schedule to 0 at step 40" in s.describe()
    s.horizon = 4
    for _ in range(3):
        s.step()
    assert s.lr_now == pytest.approx(scheduled_lr(0.05, "cosine", 3, 4)) and not s.schedule_ended
    s.step()
    assert s.schedule_ended and s.lr_now == pytest.approx(0.0, abs=1e-15)
    s.reset()
    assert s.step_count == 0 and s.lr_now == 0.05 and not s.schedule_ended
    s.step()
    assert s.optimizer.param_groups[0]["lr"] == 0.05  # the fresh optimizer starts the schedule again


def test_set_lr_changes_the_base_of_the_schedule():
    s = session()
    for _ in range(3):
        s.step()
    s.set_lr(0.5)
    assert s.lr == 0.5 and s.lr_now == pytest.approx(scheduled_lr(0.5, "cosine", 3, 12))
    assert s.optimizer.param_groups[0]["lr"] == pytest.approx(s.lr_now)
    s.step()
    assert s.optimizer.param_groups[0]["lr"] == pytest.approx(scheduled_lr(0.5, "cosine", 3, 12))


def test_constant_is_as_before():
    s = session(schedule="constant")
    for _ in range(14):  # past the steps: a constant rate has no horizon
        s.step()
    assert s.lr_now == 0.05 and s.optimizer.param_groups[0]["lr"] == 0.05 and not s.schedule_ended
    assert s.describe().endswith("adam lr 0.05")


def test_a_step_refused_for_nan_does_not_move_the_schedule():
    s = session(scale=3e38)  # the first convolution overflows to inf
    with pytest.raises(NonFiniteError):
        s.step()
    assert s.step_count == 0 and s.lr_now == 0.05


def test_the_trainer_can_pause_at_the_end_of_the_schedule():
    s = session(steps=6)
    ended = []
    states = []
    control = training.Control()
    trainer = training.Trainer(s, control, on_state=lambda state, step: states.append((state, step)),
                               pause_at_schedule_end=True, on_schedule_end=ended.append)

    def stop_once_paused(state, step):
        states.append((state, step))
        if state is training.State.PAUSED:
            control.cancel()

    trainer.on_state = stop_once_paused
    result = trainer.run()  # until cancelled: the end of the schedule pauses it
    assert s.step_count == 6 and ended == [6]
    assert (training.State.PAUSED, 6) in states and result.status is training.State.CANCELLED
    assert math.isclose(s.lr_now, 0.0, abs_tol=1e-15)


def test_the_trainer_takes_a_new_horizon_at_a_boundary_and_takes_no_step_past_the_end():
    s = session(steps=6)
    ended = []
    control = training.Control()
    control.configure(steps=3)  # the window's live edit of the training block's steps

    def on_state(state, step):
        if state is training.State.PAUSED:
            control.step(2)  # single steps past the end: refused, and paused still (no new state)

    def on_end(step):
        ended.append(step)
        if len(ended) == 2:
            control.cancel()

    trainer = training.Trainer(s, control, on_state=on_state, pause_at_schedule_end=True, on_schedule_end=on_end)
    trainer.run()
    assert s.horizon == 3 and s.step_count == 3 and ended == [3, 3]
