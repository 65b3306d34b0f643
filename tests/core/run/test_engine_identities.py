"""The loss-head identities (journey 4), against autograd, with their numbers."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnviz.core.model.stack import Loss
from cnnviz.core.run import identities

K = 5
WEIGHTS = [1.0, 2.0, 3.0, 0.5, 1.5]


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(7, K, generator=g, dtype=torch.float64) * 3
    y = torch.tensor([0, 1, 2, 3, 4, 2, 1])
    return z, y


LOSSES = {
    "mean": Loss(),
    "sum": Loss(params={"reduction": "sum"}),
    "none": Loss(params={"reduction": "none"}),
    "smoothing": Loss(params={"label_smoothing": 0.1}),
    "weights": Loss(params={"weight": WEIGHTS}),
    "weights+smoothing+ignore": Loss(params={"weight": WEIGHTS, "label_smoothing": 0.2, "ignore_index": 2}),
    "sum+smoothing": Loss(params={"reduction": "sum", "label_smoothing": 0.3}),
}


@pytest.mark.parametrize("name", LOSSES)
def test_dl_dz_is_softmax_minus_target_for_raw_scores(batch, name):
    z, y = batch
    ids = identities.check(z, y, LOSSES[name], None)
    assert ids.dz.max_abs_diff < 1e-6 and ids.dz.holds
    # Independent autograd: the same numbers the report shows.
    leaf = z.clone().requires_grad_(True)
    s = identities.loss_settings(LOSSES[name], K, z.dtype)
    value = F.cross_entropy(leaf, y, weight=s["weight"], ignore_index=s["ignore_index"], reduction=s["reduction"],
                            label_smoothing=s["label_smoothing"])
    (value if value.dim() == 0 else value.mean()).backward()
    np.testing.assert_allclose(ids.dz.autograd, leaf.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(ids.dz.formula, leaf.grad.numpy(), atol=1e-6)
    assert ids.loss.holds and ids.loss.max_abs_diff < 1e-6


def test_plain_formula_is_softmax_minus_onehot_over_n(batch):
    z, y = batch
    ids = identities.check(z, y, Loss(), None)
    expected = (torch.softmax(z, 1) - F.one_hot(y, K)) / len(y)
    np.testing.assert_allclose(ids.dz.formula, expected.numpy(), atol=1e-12)
    assert "/ N" in ids.dz.formula_text
    smooth = identities.check(z, y, Loss(params={"label_smoothing": 0.1}), None)
    np.testing.assert_allclose(smooth.target, (0.9 * F.one_hot(y, K) + 0.1 / K).numpy(), atol=1e-12)


def test_float32_identity_holds_to_1e_6():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(64, 10, generator=g) * 4
    y = torch.randint(0, 10, (64,), generator=g)
    for loss in (Loss(), Loss(params={"reduction": "sum"}), Loss(params={"label_smoothing": 0.05})):
        assert identities.check(z, y, loss, None).dz.max_abs_diff < 1e-6


def test_log_softmax_with_nll_shows_the_same_numbers_as_cross_entropy(batch):
    z, y = batch
    ce = identities.check(z, y, Loss(), None)
    nll = identities.check(z, y, Loss("NLLLoss"), "LogSoftmax", z_source="the input of layer 5 (LogSoftmax)")
    assert nll.dz.holds
    np.testing.assert_allclose(nll.dz.autograd, ce.dz.autograd, atol=1e-12)
    np.testing.assert_allclose(nll.loss.stack_loss, ce.loss.stack_loss, atol=1e-12)
    assert "LogSoftmax" in nll.notes[0]


def test_double_softmax_breaks_the_identity_for_the_pre_softmax_scores(batch):
    z, y = batch
    ids = identities.check(z, y, Loss(), "Softmax")
    assert not ids.holds and ids.dz.max_abs_diff > 1e-2
    assert ids.at_output is not None and ids.at_output.holds and ids.at_output.max_abs_diff < 1e-6
    assert "Double softmax" in ids.notes[0]
    # The loss really is CE of the probabilities, not of z.
    assert abs(float(ids.loss.stack_loss) - float(F.cross_entropy(torch.softmax(z, 1), y))) < 1e-12


def test_nll_on_raw_scores_is_minus_onehot(batch):
    z, y = batch
    ids = identities.check(z, y, Loss("NLLLoss"), None)
    assert not ids.holds
    np.testing.assert_allclose(ids.dz.autograd, (-F.one_hot(y, K) / len(y)).numpy(), atol=1e-12)
    assert "log-probabilities" in ids.notes[0]


def test_cross_entropy_equals_nll_of_log_softmax_with_all_options(batch):
    z, y = batch
    for loss in LOSSES.values():
        check = identities.check(z, y, loss, None).loss
        assert check.max_abs_diff < 1e-10, loss


def test_naive_softmax_overflows_on_large_logits_and_the_shifted_one_does_not():
    z = torch.tensor([[2.0, 1.0, 0.1, -1.0]])
    st = identities.softmax_stability(z[0])
    assert st.scale == 1000.0
    assert not st.naive_finite and np.isnan(st.naive).any()
    assert np.isfinite(st.shifted).all() and abs(st.shifted.sum() - 1) < 1e-6
    assert st.shifted_vs_torch < 1e-6
    assert np.isinf(st.naive_log).any() or np.isnan(st.naive_log).any()
    assert np.isfinite(st.log_softmax).all()
    assert st.unscaled_naive_vs_shifted < 1e-6
    small = identities.softmax_stability(torch.tensor([1e-3, 0.0]))
    assert small.scale > 1000 and not small.naive_finite  # raised so that the largest score is 1000


def test_weighted_mean_divides_by_the_rows_class_weights(batch):
    z, y = batch
    ids = identities.check(z, y, LOSSES["weights"], None)
    w = torch.tensor(WEIGHTS, dtype=z.dtype)
    expected = w[y][:, None] * (torch.softmax(z, 1) - F.one_hot(y, K)) / w[y].sum()
    np.testing.assert_allclose(ids.dz.formula, expected.numpy(), atol=1e-12)


def test_ignored_rows_have_zero_gradient(batch):
    z, y = batch
    ids = identities.check(z, y, Loss(params={"ignore_index": 2}), None)
    assert ids.holds
    assert np.all(ids.dz.autograd[(y == 2).numpy()] == 0)
    assert "ignore_index" in ids.dz.formula_text


def test_describe_gives_lines_with_numbers(batch):
    z, y = batch
    lines = identities.describe(identities.check(z.float(), y, Loss(), "Softmax"))
    assert any("does not hold" in line for line in lines)
    assert any("overflows" in line for line in lines)
