"""Stack edits: each one's inverse restores the stack, merges act like the edits in turn, and
StackDocument tells its subscribers about every change."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.core.model.layers import CATALOGUE
from cnnviz.core.model.stack import (
    Batch,
    InputSpec,
    InsertLayer,
    Layer,
    Loss,
    MoveLayer,
    RemoveLayer,
    ReplaceLayer,
    SetInput,
    SetLoss,
    SetStack,
    Stack,
    StackDocument,
    TrainingConfig,
    set_param,
)
from cnnviz.core.shapes import infer

CI = settings(max_examples=200, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])

LENET = Stack(name="LeNet-5", input=InputSpec(1, 28, 28), layers=(
    Layer("Conv2d", {"out_channels": 6, "kernel_size": 5, "padding": 2}), Layer("ReLU"),
    Layer("MaxPool2d", {"kernel_size": 2}), Layer("Flatten"), Layer("Linear", {"out_features": 10}, "head")))

layer = st.builds(
    Layer, st.sampled_from(sorted(CATALOGUE)),
    st.fixed_dictionaries({}, optional={"kernel_size": st.integers(1, 5), "p": st.floats(0, 1)}),
    st.one_of(st.none(), st.text(max_size=5).filter(bool)))
stacks = st.builds(Stack, name=st.text(max_size=5), input=st.builds(InputSpec, st.integers(1, 4), st.integers(1, 9),
                                                                  st.integers(1, 9)),
                   layers=st.lists(layer, max_size=6).map(tuple))
inputs = st.builds(InputSpec, st.integers(1, 4), st.integers(1, 64), st.integers(1, 64))
losses = st.builds(Loss, st.sampled_from(["CrossEntropyLoss", "NLLLoss"]),
                   st.fixed_dictionaries({}, optional={"reduction": st.sampled_from(["mean", "sum"])}))


@st.composite
def edit_for(draw, stack: Stack):
    n = len(stack.layers)
    kinds = ["insert", "input", "loss", "stack"] + (["remove", "move", "replace", "param"] if n else [])
    kind = draw(st.sampled_from(kinds))
    index = draw(st.integers(0, n - 1)) if n else 0
    if kind == "insert":
        return InsertLayer(draw(st.integers(0, n)), draw(layer))
    if kind == "remove":
        return RemoveLayer(index)
    if kind == "move":
        return MoveLayer(index, draw(st.integers(0, n - 1)))
    if kind == "replace":
        return ReplaceLayer(index, draw(layer), draw(st.one_of(st.none(), st.just("k"))))
    if kind == "param":
        key = draw(st.sampled_from([p.name for p in CATALOGUE[stack.layers[index].type].params] or ["x"]))
        return set_param(stack, index, key, draw(st.one_of(st.none(), st.integers(1, 4))))
    if kind == "input":
        return SetInput(draw(inputs))
    if kind == "loss":
        return SetLoss(draw(losses))
    return SetStack(draw(stacks), "Paste")


@st.composite
def stack_and_edits(draw, count=1):
    stack = draw(stacks)
    edits, current = [], stack
    for _ in range(count):
        edit = draw(edit_for(current))
        current, _ = edit.apply(current)
        edits.append(edit)
    return stack, edits


@CI
@given(stack_and_edits())
def test_inverse_restores_the_stack(case):
    stack, (edit,) = case
    new, inverse = edit.apply(stack)
    back, again = inverse.apply(new)
    assert back == stack and back.key() == stack.key()
    assert again.apply(back)[0] == new, "the inverse's inverse redoes the edit"
    assert isinstance(edit.text, str) and edit.text


@CI
@given(stack_and_edits(count=4))
def test_batch_applies_in_order_and_undoes_in_reverse(case):
    stack, edits = case
    expected = stack
    for edit in edits:
        expected, _ = edit.apply(expected)
    new, inverse = Batch(tuple(edits), "Paste layers").apply(stack)
    assert new == expected
    assert inverse.apply(new)[0] == stack
    assert inverse.text == "Paste layers"


@CI
@given(stack_and_edits(count=2))
def test_a_merge_acts_like_both_edits(case):
    stack, (first, second) = case
    merged = first.merge(second)
    if merged is None:
        return
    s1, _ = first.apply(stack)
    s2, _ = second.apply(s1)
    m, inverse = merged.apply(stack)
    assert m == s2
    assert inverse.apply(m)[0] == stack, "undoing the merged edit goes back before both"


def test_replace_layer_merges_edits_of_one_field_only():
    a = set_param(LENET, 0, "out_channels", 8)
    b = set_param(a.apply(LENET)[0], 0, "out_channels", 12)
    other_key = set_param(LENET, 0, "kernel_size", 3)
    other_layer = set_param(LENET, 2, "kernel_size", 3)
    assert a.merge(b) is b
    assert a.merge(other_key) is None and a.merge(other_layer) is None
    assert ReplaceLayer(0, Layer("ReLU")).merge(ReplaceLayer(0, Layer("Tanh"))) is None, "no key: no merge"
    assert a.merge(SetInput(InputSpec())) is None
    assert a.text == "Change 0.out_channels"


def test_set_input_merges_with_set_input():
    a, b = SetInput(InputSpec(1, 30, 30)), SetInput(InputSpec(1, 32, 32))
    assert a.merge(b) is b and a.merge(RemoveLayer(0)) is None
    merged = a.merge(b)
    new, inverse = merged.apply(LENET)
    assert new.input == InputSpec(1, 32, 32) and inverse.apply(new)[0] == LENET


def test_set_param_none_removes_inferable_and_optional_keywords():
    with_cin = ReplaceLayer(0, LENET.layers[0].with_param("in_channels", 1)).apply(LENET)[0]
    edit = set_param(with_cin, 0, "in_channels", None)
    assert "in_channels" not in edit.layer.params
    pool = set_param(LENET, 2, "stride", 2).apply(LENET)[0]
    assert "stride" not in set_param(pool, 2, "stride", None).layer.params
    kept = set_param(LENET, 0, "kernel_size", None)
    assert kept.layer.params["kernel_size"] is None, "a required keyword set to None stays (and shows an error)"
    assert infer(kept.apply(LENET)[0]).first_error.error_param == "kernel_size"


def test_bad_edits_raise_and_change_nothing():
    for edit, error in [(InsertLayer(9, Layer("ReLU")), IndexError), (InsertLayer(-1, Layer("ReLU")), IndexError),
                        (InsertLayer(0, Layer("os.system")), KeyError), (RemoveLayer(5), IndexError),
                        (MoveLayer(0, 5), IndexError), (ReplaceLayer(0, Layer("Conv3d")), KeyError),
                        (SetLoss(Loss("MSELoss")), KeyError)]:
        doc = StackDocument(LENET)
        seen = []
        doc.subscribe(lambda old, new: seen.append(new))
        with pytest.raises(error):
            doc.apply(edit)
        assert doc.stack is LENET and seen == []


def test_move_layer_semantics():
    new, inverse = MoveLayer(0, 3).apply(LENET)
    assert [l.type for l in new.layers] == ["ReLU", "MaxPool2d", "Flatten", "Conv2d", "Linear"]
    assert inverse == MoveLayer(3, 0) and inverse.apply(new)[0] == LENET


def test_stacks_are_values():
    params = {"out_channels": 4, "kernel_size": 3}
    a = Layer("Conv2d", params)
    params["out_channels"] = 99
    assert a.params["out_channels"] == 4, "a layer keeps its own copy of the keywords"
    twin = Stack(name="LeNet-5", input=InputSpec(1, 28, 28), layers=list(LENET.layers))
    assert twin == LENET and hash(twin) == hash(LENET) and twin.key() == LENET.key()
    assert set_param(LENET, 0, "out_channels", 8).apply(LENET)[0] != LENET
    assert LENET.layers[0].params["out_channels"] == 6, "edits never change the stack they start from"
    assert Stack(training=TrainingConfig()) != Stack(), "training settings are part of the value"


def test_document_notifies_subscribers():
    doc = StackDocument(LENET)
    seen, other = [], []
    unsubscribe = doc.subscribe(lambda old, new: seen.append((old, new)))
    doc.subscribe(lambda old, new: other.append(new))
    history = [doc.apply(InsertLayer(1, Layer("BatchNorm2d")))]
    assert seen == [(LENET, doc.stack)] and doc.stack.layers[1].type == "BatchNorm2d"
    history.append(doc.apply(SetInput(InputSpec(1, 32, 32))))
    doc.apply(history.pop())
    doc.apply(history.pop())
    assert doc.stack == LENET and len(seen) == 4 and len(other) == 4
    unsubscribe()
    doc.reset(Stack(name="new"))
    assert len(seen) == 4 and len(other) == 5 and doc.stack.name == "new"
    doc.reset(doc.stack)
    assert len(other) == 5, "no news when nothing changed"


def test_document_starts_empty():
    doc = StackDocument()
    assert doc.stack == Stack() and doc.stack.layers == ()


def test_listener_may_unsubscribe_while_notified():
    doc = StackDocument(LENET)
    calls = []

    def once(old, new):
        calls.append(new)
        stop()

    stop = doc.subscribe(once)
    doc.subscribe(lambda old, new: calls.append("second"))
    doc.apply(RemoveLayer(0))
    doc.apply(RemoveLayer(0))
    assert len(calls) == 3 and calls[1:] == ["second", "second"]
