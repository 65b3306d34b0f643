"""Blocks in the stack model (SPEC §3.1): paths into them, edits inside them and across them, identities,
equality, and the file form (version 2 only when a block is there)."""
import json

import pytest

from cnnviz.core.model import files
from cnnviz.core.model.paths import LayerPath
from cnnviz.core.model.stack import (
    InputSpec,
    InsertLayer,
    Layer,
    MoveLayer,
    RemoveLayer,
    Stack,
    concat,
    residual,
    set_param,
)


def conv(c, k=3, **kw):
    return Layer("Conv2d", {"out_channels": c, "kernel_size": k, **kw})


def net():
    return Stack("blocks", InputSpec(3, 16, 16), (
        conv(8, padding=1),
        residual([conv(8, padding=1), Layer("BatchNorm2d"), Layer("ReLU")], name="res"),
        concat([conv(4, 1)], [conv(4, padding=1)], []),
        Layer("Flatten"), Layer("Linear", {"out_features": 10})))


def test_paths_reach_every_layer_at_every_depth():
    stack = net()
    paths = [str(p) for p, _ in stack.walk()]
    assert paths == ["0", "1", "1.body.0", "1.body.1", "1.body.2", "2", "2.branches.0.0", "2.branches.1.0",
                     "3", "4"]
    assert stack.layer_at("1.body.1").type == "BatchNorm2d"
    assert stack.layer_at(LayerPath(2, "branches", 1, 0)).params["padding"] == 1
    assert LayerPath.of("2.branches.1.0").words() == "layer 2 → branches → 1 → 0"
    for bad in ["1.shortcut.0", "2.branches.2.0", "0.body.0", "1.branches.0.0", "2.body.0"]:
        with pytest.raises(IndexError):
            stack.layer_at(bad)


def test_edits_inside_a_block_keep_its_identity_and_undo():
    stack = net()
    block_uid = stack.layers[1].uid
    inserted, undo = InsertLayer("1.shortcut.0", conv(8, 1)).apply(stack)
    assert inserted.layer_at("1.shortcut.0").type == "Conv2d" and inserted.layers[1].uid == block_uid
    assert undo.apply(inserted)[0] == stack
    changed, undo = set_param(stack, "1.body.0", "kernel_size", 5).apply(stack)
    assert changed.layer_at("1.body.0").params["kernel_size"] == 5
    assert changed.layer_at("1.body.0").uid == stack.layer_at("1.body.0").uid
    assert undo.apply(changed)[0] == stack
    removed, undo = RemoveLayer("2.branches.0.0").apply(stack)
    assert removed.layers[2].branches[0] == ()
    assert undo.apply(removed)[0].layer_at("2.branches.0.0").uid == stack.layer_at("2.branches.0.0").uid


def test_a_layer_moves_into_and_out_of_a_block_with_its_identity():
    stack = net()
    moved, undo = MoveLayer(0, "0.body.0").apply(stack)  # into the body (a path in the result)
    assert moved.layer_at("0.body.0").uid == stack.layers[0].uid and len(moved.layers) == 4
    assert undo.apply(moved)[0] == stack
    out, _ = MoveLayer("2.branches.1.0", 0).apply(stack)
    assert out.layers[0].uid == stack.layer_at("2.branches.1.0").uid and out.layers[3].branches[1] == ()


def test_equality_and_the_key_see_the_inside_of_a_block_but_not_identities():
    a, b = net(), net()
    assert a == b and hash(a) == hash(b) and a.key() == b.key()
    assert a.layers[1].uid != b.layers[1].uid
    changed, _ = set_param(a, "1.body.0", "out_channels", 16).apply(a)
    assert changed != a and changed.key() != a.key()
    copy = a.layers[1].copy()
    assert copy == a.layers[1] and copy.uid != a.layers[1].uid and copy.body[0].uid != a.layers[1].body[0].uid


def test_the_file_form_round_trips_and_names_the_version():
    stack = net()
    text = files.dumps(stack)
    doc = json.loads(text)
    assert doc["version"] == 2
    assert doc["layers"][1] == {"type": "Residual", "name": "res", "body": [
        {"type": "Conv2d", "params": {"out_channels": 8, "kernel_size": 3, "padding": 1}},
        {"type": "BatchNorm2d"}, {"type": "ReLU"}]}
    assert doc["layers"][2]["branches"][2] == []
    again = files.loads(text)
    assert again == stack and files.dumps(again) == text


@pytest.mark.parametrize("entry, location, says", [
    ('{"type": "Residual"}', "layers[0].body", "a Residual has a"),
    ('{"type": "Residual", "body": {}}', "layers[0].body", "expected a list of layers"),
    ('{"type": "Residual", "body": [], "params": {}}', "layers[0].params", "unknown key"),
    ('{"type": "Concat", "branches": []}', "layers[0].branches", "at least one branch"),
    ('{"type": "Concat", "branches": [[{"type": "Nope"}]]}', "layers[0].branches[0][0].type",
     "unknown layer type"),
    ('{"type": "Residual", "body": [{"type": "Conv2d", "params": {"out_channels": 2, "kernel_size": 0}}]}',
     "layers[0].body[0].params.kernel_size", ""),
])
def test_a_broken_block_is_refused_where_it_breaks(entry, location, says):
    text = ('{"format": "cnnviz.stack", "version": 2, "input": {"channels": 1, "height": 8, "width": 8}, '
            '"layers": [' + entry + ']}')
    with pytest.raises(files.StackFileError) as info:
        files.loads(text)
    assert info.value.location == location and says in info.value.message


@pytest.mark.parametrize("kind", ["{}", "[]", "[1]"])
def test_a_type_that_is_not_text_is_a_located_refusal(kind):
    head = '{"format": "cnnviz.stack", "version": 2, "input": {"channels": 1, "height": 8, "width": 8}, '
    for text, location in [(head + '"layers": [{"type": ' + kind + '}]}', "layers[0].type"),
                           (head + '"layers": [], "loss": {"type": ' + kind + '}}', "loss.type")]:
        with pytest.raises(files.StackFileError) as info:
            files.loads(text)
        assert info.value.location == location and "unknown" in info.value.message
