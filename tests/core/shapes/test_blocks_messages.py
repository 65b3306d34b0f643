"""What shape inference says about blocks: the inner path of an error, the shortcut that fixes a residual
mismatch (tried before it is offered, applied as one undoable edit), the block lints, receptive fields,
and the summary's nested entries (SPEC §3.1)."""
from __future__ import annotations

import json

from cnnviz.core.model.stack import InputSpec, Layer, Stack, concat, residual
from cnnviz.core.shapes import infer
from cnnviz.core.shapes.inference import fix_edit
from cnnviz.core.shapes.summary import to_json, to_text


def conv(c, k=3, **kw):
    return Layer("Conv2d", {"out_channels": c, "kernel_size": k, **kw})


def test_an_error_inside_a_block_names_the_inner_path_and_siblings_are_still_inferred():
    stack = Stack("b", InputSpec(1, 4, 4), (
        concat([conv(2, 7)], [conv(3, 1)]), Layer("ReLU")))
    report = infer(stack)
    block = report.layers[0]
    assert block.error.startswith("layer 0 → branches → 0 → 0 (Conv2d) cannot work:")
    assert report.problem.startswith("layer 0 → branches → 0 → 0 (Conv2d): ")
    assert report.at("0.branches.1.0").output_shape == (3, 4, 4)  # the sibling branch
    assert report.at("0.branches.0.0").error_fixes  # the inner layer keeps its own fixes
    assert report.layers[1].output_shape is None and not report.layers[1].reachable


def test_a_residual_mismatch_offers_the_projection_that_fits_and_it_works():
    stack = Stack("b", InputSpec(8, 16, 16), (residual([conv(16, stride=2, padding=1), Layer("BatchNorm2d")]),))
    bad = infer(stack).layers[0]
    assert bad.error_code == "residual"
    assert "the body gives 16×8×8 but the identity shortcut gives 8×16×16" in bad.error
    (fix,) = bad.fixes
    assert str(fix) == "a shortcut Conv2d(out_channels=16, kernel_size=1, stride=2, bias=False)"
    fixed, undo = fix_edit(stack, 0, fix).apply(stack)
    assert infer(fixed).ok and infer(fixed).output_shape == (16, 8, 8)
    assert fixed.layer_at("0.shortcut.0").params == {"out_channels": 16, "kernel_size": 1, "stride": 2,
                                                      "bias": False}
    assert undo.apply(fixed)[0] == stack


def test_a_flat_residual_is_fixed_with_a_linear_and_an_impossible_one_gets_no_fix():
    flat = Stack("f", InputSpec(1, 4, 4), (Layer("Flatten"), residual([Layer("Linear", {"out_features": 8})])))
    (fix,) = infer(flat).layers[1].fixes
    assert str(fix) == "a shortcut Linear(out_features=8)" and infer(fix_edit(flat, 1, fix).apply(flat)[0]).ok
    grow = Stack("g", InputSpec(1, 4, 4), (residual([conv(2, 1, padding=2)]),))  # 8×8 from 4×4: no stride
    bad = infer(grow).layers[0]
    assert bad.error_code == "residual" and bad.fixes == ()


def test_a_concat_names_its_branches_when_they_disagree():
    stack = Stack("c", InputSpec(2, 8, 8), (concat([conv(4, 3)], [conv(4, 3, padding=1)]),))
    bad = infer(stack).layers[0]
    assert bad.error_code == "merge"
    assert bad.error.startswith("branch 0 gives 4×6×6, branch 1 gives 4×8×8; Concat joins them on dimension 1")


def test_block_lints():
    no_norm = Stack("n", InputSpec(4, 8, 8), (residual([conv(4, padding=1), Layer("ReLU")]),))
    assert any("no normalisation" in w for w in infer(no_norm).layers[0].warnings)
    normed = Stack("n", InputSpec(4, 8, 8), (residual([conv(4, padding=1), Layer("BatchNorm2d")]),))
    assert not infer(normed).layers[0].warnings
    projection = Stack("p", InputSpec(4, 8, 8), (residual([conv(4, padding=1), Layer("BatchNorm2d")], [conv(4, 1)]),))
    (warning,) = infer(projection).layers[0].warnings
    assert "the identity would do" in warning
    (fix,) = infer(projection).layers[0].fixes
    assert fix_edit(projection, 0, fix).apply(projection)[0].layers[0].shortcut == ()
    single = Stack("s", InputSpec(4, 8, 8), (concat([conv(4, padding=1)]),))
    assert any("one branch" in w for w in infer(single).layers[0].warnings)


def test_the_receptive_field_of_a_merge_is_its_widest_branch():
    stack = Stack("r", InputSpec(1, 32, 32), (concat([conv(2, 1)], [conv(2, 3, padding=1), conv(2, 3, padding=1)],
                                                     []),))
    r = infer(stack).layers[0]
    assert r.receptive_field.size == (5, 5)


def test_the_summary_nests_blocks_with_paths_and_counts_everything_once():
    stack = Stack("s", InputSpec(3, 8, 8), (
        conv(4, padding=1),
        residual([conv(4, padding=1), Layer("BatchNorm2d")], [], name="res"),
        concat([conv(2, 1)], []), Layer("Flatten"), Layer("Linear", {"out_features": 10})))
    doc = json.loads(json.dumps(to_json(stack)))
    res = doc["layers"][1]
    assert res["path"] == "1" and res["type"] == "Residual" and res["name"] == "res"
    assert [e["path"] for e in res["body"]] == ["1.body.0", "1.body.1"] and res["shortcut"] == []
    assert [e["index"] for e in res["body"]] == [0, 1]
    assert res["params"] == sum(e["params"] for e in res["body"]) == (4 * 4 * 9 + 4) + 8
    cat = doc["layers"][2]
    assert [[e["path"] for e in b] for b in cat["branches"]] == [["2.branches.0.0"], []]
    assert cat["output_shape"] == [6, 8, 8]
    assert doc["total_params"] == sum(e["params"] for e in doc["layers"])
    text = to_text(stack)
    assert "1.body.0" in text and "2.branches.0.0" in text and "OK: output 10" in text
