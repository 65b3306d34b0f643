"""Stack edits: each one's inverse restores the stack, merges act like the edits in turn, layers are named
by path, a stack is serialised once, and StackDocument tells its subscribers about every change (the edit
and the report with it)."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnviz.core.model import stack as stack_module
from cnnviz.core.model.layers import CATALOGUE, DEFAULT
from cnnviz.core.model.paths import LayerPath
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
    StackChange,
    StackDocument,
    TrainingConfig,
    set_loss_param,
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
    text = edit.describe(stack)
    assert isinstance(text, str) and text


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
    assert inverse.describe(new) == "Paste layers"


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
    assert a.describe(LENET) == "Change out_channels of Conv2d"


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
        doc.subscribe(lambda change: seen.append(change.new))
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
    unsubscribe = doc.subscribe(lambda change: seen.append((change.old, change.new)))
    doc.subscribe(lambda change: other.append(change.new))
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

    def once(change):
        calls.append(change.new)
        stop()

    stop = doc.subscribe(once)
    doc.subscribe(lambda change: calls.append("second"))
    doc.apply(RemoveLayer(0))
    doc.apply(RemoveLayer(0))
    assert len(calls) == 3 and calls[1:] == ["second", "second"]


# ------------------------------------------------------------------ change events carry the edit
def test_change_events_carry_the_edit_and_its_path():
    doc = StackDocument(LENET)
    changes: list[StackChange] = []
    doc.subscribe(changes.append)
    insert = InsertLayer(1, Layer("BatchNorm2d"))
    doc.apply(insert)
    doc.apply(MoveLayer(0, 2))
    doc.apply(set_param(doc.stack, 4, "kernel_size", 3))
    doc.apply(RemoveLayer(3))
    assert [type(c.edit) for c in changes] == [InsertLayer, MoveLayer, ReplaceLayer, RemoveLayer]
    assert changes[0].edit is insert and changes[0].edit.path == LayerPath(1) == (1,)
    assert (changes[1].edit.source, changes[1].edit.dest) == ((0,), (2,))
    assert changes[2].edit.path == (4,) and changes[2].edit.key == "kernel_size"
    for before, after in itertools.pairwise(changes):
        assert after.old is before.new, "each event starts where the last one ended"
    assert all(c.edit.apply(c.old)[0] == c.new for c in changes), "the edit is what turned old into new"
    doc.reset(LENET)
    assert changes[-1].edit is None and changes[-1].new is LENET, "a reset (open, new) carries no edit"


def test_an_undo_is_an_event_with_the_inverse():
    doc = StackDocument(LENET)
    changes = []
    doc.subscribe(changes.append)
    inverse = doc.apply(RemoveLayer(2))
    assert inverse == InsertLayer(2, LENET.layers[2])
    doc.apply(inverse)
    assert changes[-1].edit is inverse and changes[-1].new == LENET


def test_a_no_op_edit_tells_nobody_and_gives_no_inverse():
    doc = StackDocument(LENET)
    changes = []
    doc.subscribe(changes.append)
    assert doc.apply(MoveLayer(2, 2)) is None
    assert doc.apply(set_param(LENET, 0, "out_channels", 6)) is None
    assert doc.apply(SetStack(Stack(LENET.name, LENET.input, LENET.layers))) is None, "equal is no change"
    assert changes == [] and doc.stack is LENET


def test_the_document_analyses_each_stack_once_and_hands_the_report_over():
    calls = []

    def analyse(stack):
        calls.append(stack)
        return infer(stack)

    doc = StackDocument(LENET, analyse=analyse)
    reports = []
    for _ in range(3):  # several listeners, as in the window
        doc.subscribe(lambda change: reports.append(change.report))
    assert doc.report is doc.report and len(calls) == 1
    doc.apply(set_param(LENET, 0, "out_channels", 8))
    assert len(calls) == 2 and reports[0] is reports[1] is reports[2] is doc.report
    assert doc.report.layers[0].output_shape == (8, 28, 28)
    assert StackDocument(LENET).report is None, "without analyse there is no report"


# ------------------------------------------------------------------ paths
def test_layer_paths():
    assert LayerPath(3) == (3,) and LayerPath.of(3) == LayerPath((3,)) == LayerPath.of("3")
    nested = LayerPath.of("3.body.1")
    assert nested == (3, "body", 1) and str(nested) == "3.body.1" and nested.index == 1
    assert nested.container == (3, "body") and not nested.top_level and nested.sibling(0) == (3, "body", 0)
    assert eval(repr(nested), {"LayerPath": LayerPath}) == nested
    for bad in [(), ("body",), (3, "body"), (True,), (3, 4, 5)]:
        with pytest.raises((TypeError, ValueError)):
            LayerPath(*bad)
    assert InsertLayer(2, Layer("ReLU")) == InsertLayer(LayerPath(2), Layer("ReLU")), "an index will do"
    assert LENET.layer_at(4) is LENET.layer_at(LayerPath(4)) is LENET.layers[4]
    with pytest.raises(IndexError, match="not a block"):
        RemoveLayer(LayerPath(1, "body", 0)).apply(LENET)
    with pytest.raises(IndexError):
        LENET.layer_at(5)


# ------------------------------------------------------------------ back to default
def test_back_to_default_has_one_definition():
    conv = CATALOGUE["Conv2d"]
    assert conv.param("stride").is_default(1) and conv.param("stride").is_default(DEFAULT)
    assert not conv.param("stride").is_default([1, 1]) and not conv.param("bias").is_default(1)
    assert conv.param("in_channels").is_default(None) and not conv.param("in_channels").is_default(1)
    assert not conv.param("kernel_size").is_default(None), "a required keyword has no default to go back to"
    assert not CATALOGUE["BatchNorm2d"].param("momentum").is_default(None), "None is a value of its own here"
    with_stride = set_param(LENET, 0, "stride", 2).apply(LENET)[0]
    assert "stride" not in set_param(with_stride, 0, "stride", 1).layer.params, "torch's default leaves it out"
    assert "stride" not in set_param(with_stride, 0, "stride", DEFAULT).layer.params
    assert set_param(with_stride, 0, "stride", [1, 1]).layer.params["stride"] == [1, 1]
    smoothing = set_loss_param(LENET.loss, "label_smoothing", 0.1).loss
    assert smoothing.params == {"label_smoothing": 0.1}
    assert Loss(smoothing.type, {}) == set_loss_param(smoothing, "label_smoothing", 0.0).loss
    assert set_loss_param(smoothing, "label_smoothing", DEFAULT).loss.params == {}


# ------------------------------------------------------------------ hashing
def test_a_stack_is_serialised_once(monkeypatch):
    stack = Stack(name="LeNet-5", input=InputSpec(1, 28, 28), layers=list(LENET.layers))
    twin = Stack(name="LeNet-5", input=InputSpec(1, 28, 28), layers=list(LENET.layers))
    calls = []
    real = stack_module._canonical

    def counting(obj):
        if isinstance(obj, dict) and "layers" in obj:
            calls.append(obj)
        return real(obj)

    monkeypatch.setattr(stack_module, "_canonical", counting)
    first = hash(stack)
    assert hash(stack) == first and stack.key() == stack.key() and stack == twin and twin == stack
    assert {stack: 1}[twin] == 1 and stack in {twin} and hash(twin) == first
    assert len(calls) == 2, "once for each stack: never again on a hash, a comparison or a lookup"
    infer(stack)
    infer(stack)
    assert len(calls) == 2, "the shape cache finds the stack without writing it out again"
    edited = set_param(stack, 0, "out_channels", 8).apply(stack)[0]
    assert edited != stack and len(calls) == 3, "an edit's new stack is serialised once, when first compared"
