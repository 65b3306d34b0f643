"""The layer catalogue against torch's own classes, and against itself.

Every keyword the catalogue offers is one torch's constructor takes, with
torch's default; every torch keyword that changes shapes or numbers is in the
catalogue; every choice and every default is accepted by torch and by
cnnviz's own validation.
"""
from __future__ import annotations

import inspect

import pytest

from cnnviz.core.model.layers import CATALOGUE, CHOICE, GROUPS, LOSSES, REQUIRED, SIZE, WEIGHTS, by_group, spec_for
from cnnviz.core.model.stack import InputSpec, Layer, Stack
from cnnviz.core.model.validate import check_params, check_value
from cnnviz.core.shapes import infer
from cnnviz.core.shapes.rules import RULES

torch = pytest.importorskip("torch")

# torch keywords that change nothing about shapes or numbers, or are deprecated aliases
IGNORED = {"device", "dtype", "size_average", "reduce"}
SPECS = {**CATALOGUE, **LOSSES}
SPEC_SECTION_1 = {"Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm2d", "BatchNorm1d", "Dropout",
                  "Dropout2d",
                  "ReLU", "LeakyReLU", "GELU", "Sigmoid", "Tanh", "Flatten", "Linear", "Softmax", "LogSoftmax"}
FLAT_ONLY = {"BatchNorm1d"}
"""Layers that take a flat vector per sample (N×C), never maps."""
# What common CNNs (MobileNet, EfficientNet, ResNet variants) need beyond that.
COMMON_CNN = {"ReLU6", "ELU", "SiLU", "Hardswish", "Hardsigmoid", "Identity"}


def torch_keywords(type_name: str) -> dict[str, inspect.Parameter]:
    sig = inspect.signature(getattr(torch.nn, type_name).__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in IGNORED}


def test_spec_section_1_catalogue_is_there():
    assert SPEC_SECTION_1 <= set(CATALOGUE)
    assert {"CrossEntropyLoss", "NLLLoss"} <= set(LOSSES)


def test_common_cnn_layers_are_there_with_torchs_keywords():
    assert COMMON_CNN <= set(CATALOGUE)
    keywords = {t: {p.name: p.default for p in CATALOGUE[t].params} for t in COMMON_CNN}
    assert keywords == {"ReLU6": {"inplace": False}, "SiLU": {"inplace": False}, "Hardswish": {"inplace": False},
                        "Hardsigmoid": {"inplace": False}, "ELU": {"alpha": 1.0, "inplace": False},
                        "Identity": {}}
    assert {t for t in COMMON_CNN if CATALOGUE[t].group == "activation"} == COMMON_CNN - {"Identity"}
    # nn.Identity takes (and ignores) any arguments: a keyword cnnviz offered would do nothing.
    sig = inspect.signature(torch.nn.Identity.__init__)
    assert {p.kind for n, p in sig.parameters.items() if n != "self"} <= {inspect.Parameter.VAR_POSITIONAL,
                                                                          inspect.Parameter.VAR_KEYWORD}


@pytest.mark.parametrize("type_name", sorted(COMMON_CNN))
def test_common_cnn_layers_take_every_keyword_off_its_default(type_name):
    """Every keyword away from its default passes validation, builds torch's module and keeps the shape."""
    spec = CATALOGUE[type_name]
    given = {p.name: (not p.default if isinstance(p.default, bool) else 0.5) for p in spec.params}
    assert check_params(spec, given) == []
    x = torch.randn(2, 3, 5, 4)
    y = getattr(torch.nn, type_name)(**given)(x.clone())
    assert y.shape == x.shape
    stack = Stack(input=InputSpec(3, 5, 4), layers=(Layer(type_name, given),))
    assert infer(stack).output_shape == (3, 5, 4)


@pytest.mark.parametrize("type_name", sorted(SPECS))
def test_keywords_are_torchs(type_name):
    spec = SPECS[type_name]
    theirs = torch_keywords(type_name)
    ours = {p.name: p for p in spec.params}
    assert set(ours) == set(theirs), f"{type_name}: only cnnviz {set(ours) - set(theirs)}, " \
                                     f"only torch {set(theirs) - set(ours)}"
    for name, p in ours.items():
        t = theirs[name]
        if t.default is inspect.Parameter.empty:
            assert p.default is REQUIRED, f"{type_name}.{name}: torch has no default"
        else:
            assert p.default is not REQUIRED, f"{type_name}.{name}: torch's default is {t.default!r}"
            assert p.default == t.default and type(p.default) is type(t.default), \
                f"{type_name}.{name}: cnnviz {p.default!r}, torch {t.default!r}"


@pytest.mark.parametrize("type_name", sorted(SPECS))
def test_defaults_and_suggestions_pass_validation(type_name):
    spec = SPECS[type_name]
    for p in spec.params:
        if p.default is not REQUIRED:
            assert check_value(p, p.default) is None, (p.name, p.default)
        if p.required:
            assert p.suggest is not None and check_value(p, p.suggest) is None, (p.name, p.suggest)
        if p.kind == CHOICE:
            assert p.choices and (p.default is REQUIRED or p.default in p.choices)
    assert check_params(spec, spec.initial_params()) == []


@pytest.mark.parametrize("type_name", sorted(CATALOGUE))
def test_a_fresh_layer_works_on_a_plain_input(type_name, torch_reference):
    """What the palette adds (required keywords at their suggestion) runs, in cnnviz and in torch: on maps,
    or after Flatten for a layer of flat vectors."""
    spec = CATALOGUE[type_name]
    before = (Layer("Flatten"),) if type_name in FLAT_ONLY else ()
    stack = Stack(input=InputSpec(3, 16, 16), layers=(*before, Layer(type_name, spec.initial_params())))
    assert infer(stack).first_error is None
    assert torch_reference.mismatch(stack) is None


@pytest.mark.parametrize("type_name", sorted(SPECS))
def test_every_choice_is_accepted_by_torch(type_name):
    spec = SPECS[type_name]
    required = {p.name: p.suggest for p in spec.params if p.default is REQUIRED}
    required = {k: (3 if v is None else v) for k, v in required.items()}
    for p in spec.params:
        for choice in p.choices if p.kind == CHOICE else ():
            getattr(torch.nn, type_name)(**{**required, p.name: choice})
        if p.kind == CHOICE:
            with pytest.raises((ValueError, RuntimeError, TypeError, AssertionError)):
                module = getattr(torch.nn, type_name)(**{**required, p.name: "surely-not-a-choice"})
                _exercise(module)


def _exercise(module) -> None:
    """Some torch classes check a choice only when used."""
    x = torch.zeros(2, 3, 8, 8)
    if isinstance(module, torch.nn.modules.loss._Loss):
        module(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    else:
        module(x)


def test_learnable_flag_matches_torch():
    for type_name, spec in CATALOGUE.items():
        required = {p.name: p.suggest or 3 for p in spec.params if p.default is REQUIRED}
        module = getattr(torch.nn, type_name)(**required)
        assert spec.learnable == any(True for _ in module.parameters()), type_name


def test_shape_keywords_are_marked():
    """Keywords that change output shapes say so (the sidebar re-infers on them first)."""
    shaped = {
        "Conv2d": {"in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                   "padding_mode"},
        "MaxPool2d": {"kernel_size", "stride", "padding", "dilation", "ceil_mode"},
        "AvgPool2d": {"kernel_size", "stride", "padding", "ceil_mode"},
        "AdaptiveAvgPool2d": {"output_size"},
        "Flatten": {"start_dim", "end_dim"},
        "Linear": {"in_features", "out_features"},
    }
    for type_name, names in shaped.items():
        marked = {p.name for p in CATALOGUE[type_name].params if p.shapes}
        assert names <= marked, (type_name, names - marked)


def test_groups_and_lookup():
    grouped = by_group()
    assert list(grouped) == list(GROUPS)
    assert sorted(s.type for g in grouped.values() for s in g) == sorted(CATALOGUE)
    assert all(spec.group in GROUPS for spec in CATALOGUE.values())
    assert spec_for("NLLLoss").is_loss and not spec_for("Conv2d").is_loss
    with pytest.raises(KeyError):
        spec_for("os.system")
    assert set(RULES) == set(CATALOGUE)


def test_inferred_keywords_are_the_spec_ones():
    inferred = {(t, p.name) for t, s in CATALOGUE.items() for p in s.params if p.inferred}
    assert inferred == {("Conv2d", "in_channels"), ("BatchNorm2d", "num_features"), ("BatchNorm1d", "num_features"),
                        ("Linear", "in_features")}


def test_value_kinds_torch_takes():
    """A SIZE with null and a WEIGHTS list are what torch's constructors take (as tuple / tensor)."""
    assert SIZE in {p.kind for p in CATALOGUE["AdaptiveAvgPool2d"].params}
    assert torch.nn.AdaptiveAvgPool2d((None, 2))(torch.zeros(1, 1, 5, 5)).shape == (1, 1, 5, 2)
    assert WEIGHTS in {p.kind for p in LOSSES["CrossEntropyLoss"].params}
    torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0]))
