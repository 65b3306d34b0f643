"""Reading and writing ``.cnnviz`` stack files (SPEC §1).

A file is data, never code: JSON only, every key checked against the layer
catalogue, every value against its range, with limits that stop absurd or
hostile input before anything is allocated. A refused file raises
:class:`StackFileError` naming the place (layer index, key) and what would be
accepted. Saving is atomic: a crash mid-save leaves the old file intact.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from cnnviz.core.model import outputs
from cnnviz.core.model.layers import (
    BLOCKS,
    CATALOGUE,
    CHOICE,
    FLOAT,
    INT,
    LOSSES,
    MAX_BLOCK_DEPTH,
    MAX_INPUT_CHANNELS,
    MAX_INPUT_SIZE,
    MAX_LAYERS,
    Param,
)
from cnnviz.core.model.reading import Unreadable, read_bounded
from cnnviz.core.model.stack import DATASETS, OPTIMIZERS, SCHEDULES, InputSpec, Layer, Loss, Stack, TrainingConfig
from cnnviz.core.model.validate import check_params, check_value

FORMAT = "cnnviz.stack"
VERSION = 2
"""The version this cnnviz reads up to; a file is written as version 1 unless it holds a block (SPEC §3.1)."""
FIRST_WITH_BLOCKS = 2
SUFFIX = ".cnnviz"
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 6 + 3 * (MAX_BLOCK_DEPTH + 1)
"""JSON nesting: the document, its layers, a layer's keywords and a pair (4 levels), plus 3 per block
(a Concat's branches, a branch, an entry) for 8 blocks inside each other, and one more block level, so
that a ninth block is refused as one."""
MAX_TEXT = 10_000  # characters in a name or description
MAX_DIGITS = 40  # digits in one integer: far beyond any limit, far below Python's int-parsing guard

# Migrations from version n to n + 1, each a function of the parsed document.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: lambda doc: doc,  # version 2 adds blocks: a version 1 file is a version 2 file without any
}

_TOP_KEYS = ("format", "version", "name", "description", "input", "layers", "loss", "training")
_LAYER_KEYS = ("type", "params", "name")
_BLOCK_KEYS = {"Residual": ("type", "name", "body", "shortcut"), "Concat": ("type", "name", "branches")}
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d{1,2})?)$")


class StackFileError(ValueError):
    """A file that cannot be used; ``location`` names where (``layers[3].params.kernel_size``)."""

    def __init__(self, message: str, location: str = "", path: str | os.PathLike | None = None) -> None:
        self.message = message
        self.location = location
        self.path = str(path) if path is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.path, self.location) if part)
        return f"{where}: {self.message}" if where else self.message


# ------------------------------------------------------------------ parsing
def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise StackFileError(f"the key {key!r} appears twice in one object; keep one")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise StackFileError(f"{name} is not a number JSON allows; use a finite number")


class _LongNumber:
    """Stands in for an integer with too many digits until :func:`_check_tree` can say where it is."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _int(text: str) -> int | _LongNumber:
    digits = len(text.lstrip("-"))
    return _LongNumber(digits) if digits > MAX_DIGITS else int(text)


def _check_tree(doc: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings that are not Unicode text (a lone UTF-16
    surrogate, which JSON's \\uXXXX escapes can spell), naming where."""
    todo: list[tuple[Any, int, str]] = [(doc, 1, "")]
    while todo:
        item, d, where = todo.pop()
        if d > MAX_DEPTH:
            raise StackFileError(f"nested too deeply; stack files nest at most {MAX_DEPTH} levels", where)
        if isinstance(item, dict):
            for key, value in item.items():
                _check_text(key, where)
                todo.append((value, d + 1, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            todo.extend((v, d + 1, f"{where}[{i}]") for i, v in enumerate(item))
        elif isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, _LongNumber):
            raise StackFileError(f"a number with {item.digits:,} digits; numbers in stack files have at most "
                                 f"{MAX_DIGITS}", where)


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise StackFileError(f"the text holds \\u{ord(bad):04x}, half of a UTF-16 surrogate pair, which is not a "
                             f"character; use valid Unicode text", where) from None


def _parse(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError(f"the file is {len(data):,} bytes; stack files are at most {MAX_FILE_BYTES:,}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StackFileError(f"not UTF-8 text (byte {exc.start}); a stack file is JSON in UTF-8") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_int=_int)
    except json.JSONDecodeError as exc:
        if not text.strip():
            raise StackFileError("the file is empty; a stack file is one JSON object") from None
        raise StackFileError(f"not valid JSON: {exc.msg}; a stack file is one JSON object",
                             f"line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise StackFileError(f"nested too deeply; stack files nest at most {MAX_DEPTH} levels") from None
    except StackFileError:
        raise
    except ValueError as exc:  # anything else json cannot turn into Python values
        raise StackFileError(f"not readable as JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StackFileError(f"expected a JSON object with \"format\": \"{FORMAT}\", got {_kind(doc)}")
    _check_tree(doc)
    return doc


def _brief(v: Any) -> str:
    """A value as JSON, cut short: a hostile file must not make a message a megabyte long."""
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _short(key: str) -> str:
    """A key for a location, cut short."""
    return key if len(key) <= 40 else key[:37] + "..."


def _kind(v: Any) -> str:
    """What a JSON value is, with its article: ``an object``, ``a list``, ``null``."""
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(v), "a number")


def _migrate(doc: dict[str, Any]) -> dict[str, Any]:
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StackFileError(f"expected a whole number ≥ 1, got {_brief(version)}", "version")
    if version > VERSION:
        raise StackFileError(f"the file is version {version} but this cnnviz reads versions up to {VERSION}; "
                             f"update cnnviz to open it", "version")
    while version < VERSION:
        if version not in MIGRATIONS:
            raise StackFileError(f"the file is version {version} and this cnnviz cannot convert it to version "
                                 f"{version + 1}", "version")
        doc = MIGRATIONS[version](dict(doc))
        version += 1
        doc["version"] = version
    return doc


# --------------------------------------------------------------- validation
def _expect(cond: bool, message: str, location: str) -> None:
    if not cond:
        raise StackFileError(message, location)


def _text(doc: dict, key: str, default: str) -> str:
    value = doc.get(key, default)
    _expect(isinstance(value, str), f"expected a string, got {_kind(value)}", key)
    _expect(len(value) <= MAX_TEXT, f"longer than {MAX_TEXT} characters", key)
    return value


def _unknown_keys(obj: dict, allowed: tuple[str, ...], location: str) -> None:
    for key in obj:
        if key not in allowed:
            where = f"{location}.{_short(key)}" if location else _short(key)
            raise StackFileError(f"unknown key; expected one of: {', '.join(allowed)}", where)


def _read_input(value: Any) -> InputSpec:
    _expect(isinstance(value, dict), f"expected an object with channels, height and width, got {_kind(value)}",
            "input")
    _unknown_keys(value, ("channels", "height", "width"), "input")
    limits = {"channels": MAX_INPUT_CHANNELS, "height": MAX_INPUT_SIZE, "width": MAX_INPUT_SIZE}
    dims = {}
    for key, top in limits.items():
        _expect(key in value, f"missing; expected an integer from 1 to {top}", f"input.{key}")
        err = check_value(Param(key, INT, min=1, max=top), value[key])
        _expect(err is None, err or "", f"input.{key}")
        dims[key] = value[key]
    return InputSpec(**dims)


class _Count:
    """Layers read so far, at every depth, against :data:`MAX_LAYERS`."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, where: str) -> None:
        self.n += 1
        _expect(self.n <= MAX_LAYERS, f"more than {MAX_LAYERS} layers (counted at every depth, a block and "
                                      f"each layer inside it); at most {MAX_LAYERS} are allowed", where)


def _read_layers(value: Any, where: str, count: _Count, depth: int, blocks: bool) -> tuple[Layer, ...]:
    _expect(isinstance(value, list), f"expected a list of layers, got {_kind(value)}", where)
    _expect(len(value) <= MAX_LAYERS, f"{len(value)} layers; at most {MAX_LAYERS} are allowed", where)
    return tuple(_read_layer(f"{where}[{i}]", entry, count, depth, blocks) for i, entry in enumerate(value))


def _read_layer(where: str, entry: Any, count: _Count, depth: int = 0, blocks: bool = True) -> Layer:
    _expect(isinstance(entry, dict), f"expected an object with a \"type\", got {_kind(entry)}", where)
    count.add(where)
    given = entry.get("type")
    kind = given if isinstance(given, str) else None  # {} or [] as a type: unhashable, and no type either
    if kind in BLOCKS:
        _expect(blocks, f"{kind} is a block, and blocks need version {FIRST_WITH_BLOCKS}: write "
                        f"\"version\": {FIRST_WITH_BLOCKS}", f"{where}.type")
        _expect(depth < MAX_BLOCK_DEPTH, f"blocks nest at most {MAX_BLOCK_DEPTH} deep", where)
        _unknown_keys(entry, _BLOCK_KEYS[kind], where)
        name = _name(entry, where)
        if kind == "Residual":
            _expect("body" in entry, "missing; a Residual has a \"body\" (a list of layers)", f"{where}.body")
            body = _read_layers(entry["body"], f"{where}.body", count, depth + 1, blocks)
            shortcut = _read_layers(entry.get("shortcut", []), f"{where}.shortcut", count, depth + 1, blocks)
            return Layer(kind, name=name, body=body, shortcut=shortcut)
        _expect("branches" in entry, "missing; a Concat has \"branches\" (a list of lists of layers)",
                f"{where}.branches")
        branches = entry["branches"]
        _expect(isinstance(branches, list) and len(branches) >= 1,
                f"expected a list of at least one branch, got {_kind(branches)}", f"{where}.branches")
        _expect(len(branches) <= MAX_LAYERS, f"{len(branches)} branches; at most {MAX_LAYERS}", f"{where}.branches")
        return Layer(kind, name=name, branches=tuple(
            _read_layers(b, f"{where}.branches[{k}]", count, depth + 1, blocks) for k, b in enumerate(branches)))
    _unknown_keys(entry, _LAYER_KEYS, where)
    _expect(kind in CATALOGUE,
            f"unknown layer type {_brief(given)}; expected one of: {', '.join(CATALOGUE)}, or a block "
            f"({', '.join(BLOCKS)})", f"{where}.type")
    params = entry.get("params", {})
    _expect(isinstance(params, dict), f"expected an object of keywords, got {_kind(params)}", f"{where}.params")
    problems = check_params(CATALOGUE[kind], params)
    if problems:
        key, message = problems[0]
        raise StackFileError(message, f"{where}.params.{_short(key)}" if key in params else f"{where}.params")
    return Layer(kind, params, _name(entry, where))


def _name(entry: dict, where: str) -> str | None:
    name = entry.get("name")
    _expect(name is None or (isinstance(name, str) and len(name) <= 200),
            "expected a short string label", f"{where}.name")
    return name or None


def _read_loss(value: Any) -> Loss:
    _expect(isinstance(value, dict), f"expected an object with a \"type\", got {_kind(value)}", "loss")
    _unknown_keys(value, ("type", "params"), "loss")
    given = value.get("type")
    kind = given if isinstance(given, str) else None
    _expect(kind in LOSSES, f"unknown loss {_brief(given)}; expected one of: {', '.join(LOSSES)}", "loss.type")
    params = value.get("params", {})
    _expect(isinstance(params, dict), f"expected an object of keywords, got {_kind(params)}", "loss.params")
    problems = check_params(LOSSES[kind], params)
    if problems:
        key, message = problems[0]
        raise StackFileError(message, f"loss.params.{_short(key)}")
    return Loss(kind, params)


TRAINING_PARAMS: dict[str, Param] = {
    "optimizer": Param("optimizer", CHOICE, "adam", choices=OPTIMIZERS),
    "lr": Param("lr", FLOAT, 1e-3, min=0.0, max=10.0, min_inclusive=False),
    "momentum": Param("momentum", FLOAT, 0.9, min=0.0, max=1.0),
    "weight_decay": Param("weight_decay", FLOAT, 0.0, min=0.0, max=1.0),
    "batch_size": Param("batch_size", INT, 64, min=1, max=4096),
    "seed": Param("seed", INT, 0, min=0, max=2**32 - 1),
    "steps": Param("steps", INT, 500, min=1, max=10_000_000),
    "schedule": Param("schedule", CHOICE, "constant", choices=SCHEDULES),
}


def _read_training(value: Any) -> TrainingConfig:
    _expect(isinstance(value, dict), f"expected an object, got {_kind(value)}", "training")
    allowed = tuple(TrainingConfig.__dataclass_fields__)
    _unknown_keys(value, allowed, "training")
    out: dict[str, Any] = {}
    for key, item in value.items():
        where = f"training.{key}"
        if key == "data":
            _expect(item in DATASETS or (isinstance(item, str) and item.startswith("folder:") and len(item) < 4096),
                    f"expected one of {', '.join(DATASETS)} or \"folder:<path>\", got {_brief(item)}", where)
        elif key == "device":
            _expect(isinstance(item, str) and bool(_DEVICE_RE.match(item)),
                    f"expected auto, cpu, cuda, cuda:N or mps, got {_brief(item)}", where)
        else:
            err = check_value(TRAINING_PARAMS[key], item)
            _expect(err is None, err or "", where)
        out[key] = item
    return TrainingConfig(**out)


def from_dict(doc: dict[str, Any]) -> Stack:
    """A validated :class:`Stack` from a parsed document; StackFileError if it cannot be used."""
    _expect(doc.get("format") == FORMAT, f"expected \"{FORMAT}\", got {_brief(doc.get('format'))}", "format")
    blocks = not (isinstance(doc.get("version"), int) and doc["version"] < FIRST_WITH_BLOCKS)
    doc = _migrate(doc)  # before the key check: an older version may have keys a migration renames
    _unknown_keys(doc, _TOP_KEYS, "")
    name = _text(doc, "name", "Untitled")
    description = _text(doc, "description", "")
    _expect("input" in doc, "missing; expected {\"channels\": C, \"height\": H, \"width\": W}", "input")
    stack_input = _read_input(doc["input"])
    _expect("layers" in doc, "missing; expected a list of layers (it may be empty)", "layers")
    parsed = _read_layers(doc["layers"], "layers", _Count(), 0, blocks)
    loss = _read_loss(doc["loss"]) if "loss" in doc else Loss()
    training = _read_training(doc["training"]) if "training" in doc else None
    return Stack(name, stack_input, parsed, loss, description, training)


def loads(data: bytes | str, path: str | os.PathLike | None = None) -> Stack:
    """Parse and validate the text of a stack file."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise StackFileError(f"the text holds \\u{ord(data[exc.start]):04x}, half of a UTF-16 surrogate "
                                 f"pair, which is not a character", path=path) from None
    try:
        return from_dict(_parse(data))
    except StackFileError as exc:
        exc.path = str(path) if path is not None else None
        raise


def load(path: str | os.PathLike) -> Stack:
    """Read a stack file; StackFileError (never another exception) if it cannot be used."""
    p = Path(path)
    try:
        data = read_bounded(p, MAX_FILE_BYTES, "stack file", "stack files")
    except Unreadable as exc:
        raise StackFileError(exc.reason, path=p) from None
    return loads(data, p)


# ------------------------------------------------------------------ writing
# Characters that JSON leaves raw in strings but editors (and str.splitlines) take as line breaks;
# they only ever occur inside strings, so escaping them keeps one layer per line.
_LINE_BREAKS = {c: f"\\u{c:04x}" for c in (0x85, 0x2028, 0x2029)}


def dumps(stack: Stack) -> str:
    """The file text: one layer per line, like SPEC's example, UTF-8 JSON."""
    body = {"format": FORMAT, "version": FIRST_WITH_BLOCKS if stack.has_blocks else 1, **stack.to_dict()}

    def compact(v: Any) -> str:
        text = json.dumps(v, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
        return text.translate(_LINE_BREAKS)

    lines = ["{"]
    items = list(body.items())
    for n, (key, value) in enumerate(items):
        comma = "," if n < len(items) - 1 else ""
        if key == "layers" and value:
            lines.append('  "layers": [')
            lines.extend(f"    {compact(layer)}{',' if i < len(value) - 1 else ''}" for i, layer in enumerate(value))
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {compact(key)}: {compact(value)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def save(stack: Stack, path: str | os.PathLike) -> Path:
    """Write atomically (see :mod:`.outputs`): a crash mid-save leaves the old file intact, a killed
    save's temporary file is removed by the next save, a new file gets the user's umask.

    A symbolic link is followed, so the file it points to is replaced, not the link.
    """
    return outputs.atomic_write(path, dumps(stack).encode("utf-8"))
