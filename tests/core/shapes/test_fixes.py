"""Structured fixes: every fix an error (or the Softmax dim warning) proposes carries the change
itself, and applying it as an undoable stack edit makes the layer work; its text is unchanged."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cnnviz.core.shapes import infer
from cnnviz.core.shapes.inference import fix_edit
from cnnviz.core.shapes.reports import Fix
from tests.core.shapes.stacks import CI, FIXABLE, FIXABLE_STACKS, L, S, example, spatial_layer


def check_structured_fixes(stack, strict: bool = True) -> int:
    """Each proposed fix is a Fix with a change; applied through the stack's edits the failing layer
    (and all before it) works, and the edit's inverse brings the error back."""
    bad = infer(stack).first_error
    results = []
    for fix in bad.error_fixes:
        assert isinstance(fix, Fix) and (fix.params or fix.input), f"{fix!r} carries no change"
        fixed, inverse = fix_edit(stack, bad.index, fix).apply(stack)
        left = [r for r in infer(fixed).layers[:bad.index + 1] if r.error]
        results.append((fix, left))
        assert infer(inverse.apply(fixed)[0]).first_error.error == bad.error
    if strict or any(not left for _, left in results):
        for fix, left in results:
            assert not left, f"fix {fix!r} ({fix.label}) of {bad.error!r} leaves {[r.error for r in left]}"
    else:
        for fix, left in results:
            assert [r.error_code for r in left] != [bad.error_code], f"fix {fix!r} fixes nothing"
    return len(results)


@pytest.mark.parametrize("stack", FIXABLE_STACKS)
def test_structured_fixes_work(stack):
    assert check_structured_fixes(stack) >= 1


def test_broken_example_fixes_are_structured_and_texts_unchanged():
    stack = example("broken.cnnviz")
    bad = infer(stack).first_error
    assert check_structured_fixes(stack) >= 2
    assert "an input of at least 36×36" in bad.error_fixes
    size = next(f for f in bad.error_fixes if f.input is not None)
    assert size.input == (36, 36) and size.label == "input 36×36" and str(size) == "an input of at least 36×36"
    assert all(fix in bad.error for fix in bad.error_fixes)


def test_kernel_fix_texts_and_changes():
    bad = infer(S(1, 5, 5, L("Conv2d", out_channels=2, kernel_size=3, dilation=3))).first_error
    assert bad.error_fixes == ("padding ≥ 1", "dilation ≤ 2", "kernel ≤ 2", "an input of at least 7×7")
    assert [f.params for f in bad.error_fixes] == [(("padding", 1),), (("dilation", 2),), (("kernel_size", 2),), ()]
    assert [f.label for f in bad.error_fixes] == ["padding=1", "dilation=2", "kernel_size=2", "input 7×7"]


@pytest.mark.parametrize("kind", ["Softmax", "LogSoftmax"])
def test_softmax_without_dim_offers_dim_1(kind):
    stack = S(1, 8, 8, L("Flatten"), L("Linear", out_features=10), L(kind))
    report = infer(stack).layers[2]
    assert any(w.startswith("dim is not set") for w in report.warnings)
    (fix,) = report.fixes
    assert fix.params == (("dim", 1),) and fix.label == "dim=1"
    fixed, inverse = fix_edit(stack, 2, fix).apply(stack)
    assert fixed.layers[2].params["dim"] == 1
    assert not infer(fixed).layers[2].fixes
    assert inverse.apply(fixed)[0].layers[2].params.get("dim") is None


@CI
@given(c=st.integers(1, 2), h=st.integers(1, 12), w=st.integers(1, 12),
       layers=st.lists(spatial_layer(), min_size=1, max_size=4))
def test_every_structured_fix_works(c, h, w, layers):
    stack = S(c, h, w, *layers)
    bad = infer(stack).first_error
    if bad is None or bad.error_code not in FIXABLE:
        return
    check_structured_fixes(stack, strict=False)


def test_in_features_mismatch_offers_the_count_it_names():
    stack = S(1, 4, 4, L("Flatten"), L("Linear", in_features=400, out_features=3))
    bad = infer(stack).first_error
    assert bad.error_fixes == () and "set in_features to 16" in bad.error  # the sentence is unchanged
    (fix,) = bad.fixes
    assert fix.label == "in_features=16"
    fixed, _ = fix_edit(stack, bad.index, fix).apply(stack)
    assert infer(fixed).first_error is None
