"""Training health: histograms against numpy's, the update ratio against weights read around a real
optimizer step, dead units against a direct count, the warning sentence, and the trainer's probes."""
import dataclasses
import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from cnnviz.core.model.stack import InputSpec, Layer, Stack, TrainingConfig
from cnnviz.core.run import engine, health, training
from cnnviz.core.run.build import Residual
from cnnviz.core.run.training import ProbeRequest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
        Residual([nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6()], []),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 12), nn.ReLU(), nn.Linear(12, 3))


def batch(n=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, 6, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def train_step(m, opt, x, y):
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(m(x), y).backward()
    opt.step()


def watched_step(m, opt, monitor, x, y):
    with monitor.watching():
        train_step(m, opt, x, y)
    return monitor.read(7)


def weights_of(m, paths):
    return {p: m.get_submodule(p).weight.detach().clone() for p in paths}


def test_layers_are_the_parameterised_leaves_and_the_rectifiers_by_path():
    monitor = health.HealthMonitor(model())
    assert monitor.paths == ("0", "2.body.0", "2.body.1", "4", "6")
    assert [p for p, _ in monitor.rectifiers] == ["1", "2.body.2", "5"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_histograms_equal_numpys_with_the_same_edges(optimizer):
    m = model()
    opt = (torch.optim.Adam(m.parameters(), 1e-2) if optimizer == "adam"
           else torch.optim.SGD(m.parameters(), 0.1, momentum=0.9))
    monitor = health.HealthMonitor(m)
    x, y = batch()
    train_step(m, opt, x, y)
    h = watched_step(m, opt, monitor, x, y)
    assert h.weight_hist.shape == h.grad_hist.shape == (5, health.BINS)
    for i, path in enumerate(h.layers):
        w = m.get_submodule(path).weight
        for of, values, ranges in (("weight", w.detach(), h.weight_range), ("grad", w.grad, h.grad_range)):
            values = values.numpy().ravel()
            edges = h.edges(i, of)
            r = float(ranges[i])
            assert r >= np.abs(values).max() and r / 2 < max(np.abs(values).max(), 2.0 ** -40)
            assert math.log2(r).is_integer()
            expected, _ = np.histogram(values, edges)
            np.testing.assert_array_equal(h.weight_hist[i] if of == "weight" else h.grad_hist[i], expected)


def test_values_on_the_bin_edges_fall_where_numpy_puts_them():
    m = nn.Sequential(nn.Linear(65, 2, bias=False))
    edges = np.linspace(-1, 1, health.BINS + 1)
    with torch.no_grad():
        m[0].weight.copy_(torch.tensor(np.stack([edges, -edges]), dtype=torch.float32))  # -1, …, 1 exactly
        m[0].weight[0, 5] = float(np.nextafter(np.float32(edges[5]), np.float32(-2)))    # just below an edge
    monitor = health.HealthMonitor(m)
    h = monitor.read()
    assert h.weight_range[0] == 1.0
    np.testing.assert_array_equal(h.weight_hist[0], np.histogram(m[0].weight.detach().numpy().ravel(), h.edges(0))[0])
    assert h.weight_hist[0].sum() == 130 and h.weight_hist[0, -1] == 4   # ±1 twice each: 1 is in the last bin
    assert np.isnan(h.update_ratio[0])   # no step was watched


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_update_ratio_is_the_change_of_the_weights_read_around_the_step(optimizer):
    m = model()
    opt = (torch.optim.Adam(m.parameters(), 1e-3, weight_decay=1e-3) if optimizer == "adam"
           else torch.optim.SGD(m.parameters(), 0.05, momentum=0.9, weight_decay=1e-3))
    monitor = health.HealthMonitor(m)
    x, y = batch()
    for _ in range(3):   # momentum and Adam's moments make Δw differ from lr·g
        train_step(m, opt, x, y)
    before = weights_of(m, monitor.paths)
    h = watched_step(m, opt, monitor, x, y)
    after = weights_of(m, monitor.paths)
    expected = [float(torch.linalg.vector_norm(after[p] - before[p]) / torch.linalg.vector_norm(before[p]))
                for p in h.layers]
    np.testing.assert_allclose(h.update_ratio, expected, rtol=1e-5)
    assert all(r > 0 for r in expected)
    lr_g = [float(opt.param_groups[0]["lr"] * torch.linalg.vector_norm(m.get_submodule(p).weight.grad)
                  / torch.linalg.vector_norm(before[p])) for p in h.layers]
    assert not np.allclose(h.update_ratio, lr_g, rtol=1e-2)   # the ratio is not merely lr·‖g‖/‖w‖


def test_the_dead_fraction_is_a_direct_count_on_the_batch():
    m = model()
    with torch.no_grad():
        m[4].bias[:5] = -1e3   # five of the twelve features are 0 for every sample
    opt = torch.optim.SGD(m.parameters(), 1e-3)
    monitor = health.HealthMonitor(m)
    x, y = batch(16)
    outputs = {}
    hooks = [m.get_submodule(p).register_forward_hook(lambda mod, i, o, p=p: outputs.__setitem__(p, o.detach().clone()))
             for p in ("1", "2.body.2", "5")]
    try:
        with torch.no_grad():
            m(x)
    finally:
        for hook in hooks:
            hook.remove()
    h = watched_step(m, opt, monitor, x, y)
    assert h.rectifiers == ("1", "2.body.2", "5") and h.batch == 16
    expected = [float((outputs[p] == 0).all(0).double().mean()) for p in h.rectifiers]
    np.testing.assert_allclose(h.dead, expected, rtol=1e-6)
    assert h.dead[2] >= 5 / 12
    assert all(len(module._forward_hooks) == 0 for module in m.modules())  # the hooks are gone


def test_a_failed_step_leaves_no_hook_behind():
    m = model()
    monitor = health.HealthMonitor(m)
    with pytest.raises(RuntimeError), monitor.watching():
        m(torch.zeros(2, 1, 6, 6))
        raise RuntimeError("the step failed")
    assert all(len(module._forward_hooks) == 0 for module in m.modules())


def test_one_copy_to_the_host_and_no_other_read(monkeypatch):
    m = model()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    monitor = health.HealthMonitor(m)
    x, y = batch()
    train_step(m, opt, x, y)
    copies = []
    real_cpu = torch.Tensor.cpu

    def cpu(self, *a, **k):
        copies.append(self.numel())
        return real_cpu(self, *a, **k)

    def refuse(self, *a, **k):
        raise AssertionError("a device read besides the one copy")

    with monitor.watching():
        train_step(m, opt, x, y)
    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    for name in ("item", "tolist", "__float__", "__bool__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    h = monitor.read()
    monkeypatch.undo()
    assert len(copies) == 1 and copies[0] == 2 * 5 * health.BINS + 3 * 5 + 3
    assert np.isfinite(h.update_ratio).all() and np.isfinite(h.dead).all()


def test_the_warning_names_the_vanishing_and_the_exploding_layers():
    layers, kinds = ("0", "3.body.1", "5"), ("Conv2d", "Conv2d", "Linear")
    assert health.update_warning(layers, [1e-3, 2e-3, 5e-4], kinds) == ""
    text = health.update_warning(layers, [1e-3, 3e-7, 0.4], kinds)
    assert "exploding" in text.lower() and "layer 5 (Linear) at 0.4" in text
    assert "vanishing" in text and "layer 3.body.1 (Conv2d) at 3e-07" in text
    assert "layer 0 " not in text
    assert health.update_warning(layers, [float("nan"), 1e-3, 1e-3], kinds) == ""
    assert "layers 0 (Conv2d) at 2e-06, 5 (Linear) at 1e-06" in health.update_warning(layers, [2e-6, 1e-3, 1e-6], kinds)


def test_rebinning_to_a_larger_power_of_two_range_is_exact():
    rng = np.random.default_rng(0)
    values = [rng.normal(0, s, 500).astype(np.float32) for s in (0.01, 0.1, 0.3)]
    ranges = np.array([2.0 ** math.ceil(math.log2(np.abs(v).max())) for v in values])
    counts = np.stack([np.histogram(v, np.linspace(-r, r, 65))[0] for v, r in zip(values, ranges)])
    to = ranges.max() * 2
    merged = health.rebin(counts, ranges, to)
    for row, v in zip(merged, values):
        np.testing.assert_array_equal(row, np.histogram(v, np.linspace(-to, to, 65))[0])


STACK = Stack("tiny", InputSpec(1, 8, 8), (
    Layer("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}), Layer("ReLU", {"inplace": True}),
    Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"), Layer("Linear", {"out_features": 10})))


def test_the_trainers_probes_carry_the_health_of_the_step_they_follow():
    session = engine.Session(STACK, TrainingConfig(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0))
    try:
        probes = []
        control = training.Control()
        control.request_probe(ProbeRequest(index=1, health=True, with_identities=False))
        trainer = training.Trainer(session, control, on_probe=probes.append, probe_hz=1000, probe_budget=1.0,
                                   health_budget=1.0)
        trainer.run(12)
        stepped = [p for p in probes if p.health is not None]
        assert stepped and all(p.health.step == p.step for p in stepped)
        assert probes[0].health is None   # asked for at a boundary, before any step
        h = stepped[-1].health
        assert h.layers == ("0", "4") and h.rectifiers == ("1",) and h.batch == 16
        assert np.isfinite(h.update_ratio).all() and (h.update_ratio > 0).all()
        w = session.model[0].weight.detach().numpy().ravel()
        if stepped[-1].step == session.step_count:
            np.testing.assert_array_equal(h.weight_hist[0], np.histogram(w, h.edges(0))[0])
        assert all(len(m._forward_hooks) == 0 for m in session.model.modules())
        seen = len(probes)
        control.request_probe(ProbeRequest(index=1, health=False, with_identities=False))
        trainer.run(6)
        assert len(probes) > seen and all(p.health is None for p in probes[seen:])
    finally:
        session.close()


def test_the_windows_snapshots_carry_it_too():
    from cnnviz.core.run.live import LiveProbe, Snapshot

    session = engine.Session(STACK, TrainingConfig(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0))
    try:
        snaps = []
        control = training.Control()
        control.request_probe(ProbeRequest(index=2, health=True, with_identities=False))
        training.Trainer(session, control, probe=LiveProbe(session, generation=3), on_probe=snaps.append,
                         probe_hz=1000, probe_budget=1.0, health_budget=1.0).run(4)
        assert all(isinstance(s, Snapshot) for s in snaps)
        last = snaps[-1]
        assert last.generation == 3 and last.probe is not None and last.health is not None
        assert last.health.step == last.probe.step == session.step_count
        np.testing.assert_array_equal(last.health.weight_hist[1],
                                      np.histogram(session.model[4].weight.detach().numpy().ravel(),
                                                   last.health.edges(1))[0])
    finally:
        session.close()


def test_the_rectifiers_kinds_and_the_monitors_own_time():
    m = model()
    opt = torch.optim.SGD(m.parameters(), 1e-3)
    monitor = health.HealthMonitor(m)
    ticks = iter(range(10_000))
    monitor.clock = lambda: float(next(ticks))   # every reading of the clock one second later
    x, y = batch()
    with monitor.watching():
        assert monitor.spent == 1.0             # the copy and the hooks' set-up: read twice
        train_step(m, opt, x, y)
        assert monitor.spent == 1.0 + 3         # each of the three rectifiers' hooks
    assert monitor.spent == 5.0                 # their removal
    h = monitor.read()
    assert monitor.spent == 6.0                 # and the read
    assert h.rectifiers == ("1", "2.body.2", "5") and h.rectifier_kinds == ("ReLU", "ReLU6", "ReLU")


@dataclasses.dataclass(frozen=True)
class _Probe:
    step: int
    health: object = None


def _counted(monkeypatch, session, *, health_on, health_budget, probe_budget=1.0, probe_cost=0.0,
             read_cost=1.0, steps=12, step_costs=(1.0,)):
    """Probes, and the steps (from the run's start) of those with health, of ``steps`` steps on a fake budget clock: a step takes 1, a probe
    ``probe_cost``, the monitor's read ``read_cost`` of it; probes at most a million times a second."""
    now = [0.0]
    monkeypatch.setattr(training.Trainer, "_budget_clock", lambda self: lambda: now[0])
    real_step, real_hist = session.step, health.HealthMonitor._histograms

    costs = iter(step_costs * steps)

    def step():
        real_step()
        now[0] += next(costs)

    def histograms(self, parts):
        now[0] += read_cost
        return real_hist(self, parts)

    def probe(request):
        times.append(now[0])
        now[0] += probe_cost
        return _Probe(session.step_count)

    monkeypatch.setattr(session, "step", step)
    monkeypatch.setattr(health.HealthMonitor, "_histograms", histograms)
    probes, times = [], []
    control = training.Control()
    control.request_probe(ProbeRequest(index=1, health=health_on, with_identities=False))
    trainer = training.Trainer(session, control, on_probe=probes.append, probe=probe, probe_hz=1e6,
                               probe_budget=probe_budget, health_budget=health_budget)
    start = session.step_count
    trainer.run(steps)
    monkeypatch.undo()
    stepped = [p for p in probes[1:] if p.health is not None]   # probes[0]: the request's, before any step
    assert all(p.health.step == p.step for p in stepped)
    trainer.probe_times = times   # the fake clock at each probe (the first: the request's)
    trainer.probe_steps = [p.step - start for p in probes[1:]]
    return len(probes) - 1, [p.step - start for p in stepped], trainer


@pytest.fixture
def session():
    s = engine.Session(STACK, TrainingConfig(data="digits", device="cpu", lr=0.01, batch_size=16, seed=0))
    yield s
    s.close()


def test_health_comes_within_its_own_budget_and_the_probes_as_without_it(monkeypatch, session):
    # Probes after every step. A reading costs 1 (the read) and is followed by 3 of the loop at 25 %: steps
    # 1, 5, 9 are watched (a watched step, its read, three steps), the probes between go without.
    n, stepped, trainer = _counted(monkeypatch, session, health_on=True, health_budget=0.25)
    assert n == 12 and stepped == [1, 5, 9]
    assert trainer.health_seconds == 3.0
    n_off, none, _ = _counted(monkeypatch, session, health_on=False, health_budget=0.25)
    assert n_off == n and none == []   # health on takes no probe away
    n, stepped, _ = _counted(monkeypatch, session, health_on=True, health_budget=1.0)
    assert n == 12 and stepped == list(range(1, 13))   # a budget of everything: on every probe
    n, stepped, _ = _counted(monkeypatch, session, health_on=True, health_budget=0.5, read_cost=0.0)
    assert n == 12 and len(stepped) == 12              # a reading that costs nothing is always within it


def test_the_health_read_is_not_charged_to_the_probes_budget(monkeypatch, session):
    # A probe costs 1 at 25 %: 3 of the loop after each, so one every 4 of the clock (after steps 3, 6, 9,
    # 12 without health). With health on each, the read (1 more) is health's: to the probes' budget it is
    # loop time, as a step is, so the probes still come every 4 of the clock (one step fewer between them),
    # each step they follow chosen before it runs. Charged to the probes it would put them 8 apart.
    n_off, _, off = _counted(monkeypatch, session, health_on=False, health_budget=1.0, probe_budget=0.25,
                             probe_cost=1.0, steps=13)
    n_on, stepped, on = _counted(monkeypatch, session, health_on=True, health_budget=1.0, probe_budget=0.25,
                                 probe_cost=1.0, steps=13)
    assert n_off == 4 and np.diff(off.probe_times).tolist() == [4.0] * 4
    assert n_on == 6 and np.diff(on.probe_times).tolist() == [4.0] * 6 and len(stepped) == 6
    assert stepped == [3, 5, 7, 9, 11, 13]   # the first as early as without health: no step lost choosing it


def test_on_the_real_clock_health_stays_within_its_share(session):
    probes = []
    control = training.Control()
    control.request_probe(ProbeRequest(index=1, health=True, with_identities=False))
    trainer = training.Trainer(session, control, on_probe=probes.append, probe_hz=1000, probe_budget=1.0,
                               health_budget=0.02)
    start = time.thread_time()
    trainer.run(60)
    loop = time.thread_time() - start
    with_health = sum(p.health is not None for p in probes)
    assert 0 < with_health < len(probes) - 1   # some probes carry it, not all (a reading is ~1 ms of ~10 ms steps)
    one = trainer.health_seconds / with_health
    assert trainer.health_seconds <= 0.02 * loop + one   # its share, give or take the last reading
    assert all(len(m._forward_hooks) == 0 for m in session.model.modules())


def test_health_never_holds_a_probe_back(monkeypatch, session):
    # Steps of uneven length (1, 3, 1, 1, 3, ...): the step before a due probe is sometimes foreseen, sometimes
    # not. A read that costs nothing moves no clock, so the probes must follow the very steps they follow
    # with health off; those whose step was foreseen carry health, the others go without it.
    kw = dict(health_budget=1.0, probe_budget=0.25, probe_cost=1.0, read_cost=0.0, steps=30,
              step_costs=(1.0, 3.0, 1.0, 1.0, 3.0))
    n_off, _, off = _counted(monkeypatch, session, health_on=False, **kw)
    n_on, stepped, on = _counted(monkeypatch, session, health_on=True, **kw)
    assert n_on == n_off >= 8 and on.probe_steps == off.probe_steps
    assert n_on // 2 <= len(stepped) <= n_on and set(stepped) <= set(on.probe_steps)
