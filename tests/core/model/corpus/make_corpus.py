"""Writes the broken and hostile stack files of this folder and index.json, the located message each must get.

Run it after changing a case: ``python tests/core/model/corpus/make_corpus.py``. Files too big to keep in git
(over 1 MiB, 100000-deep nesting, 10^6 layers) are made by test_files.py itself.
"""
import json
import pathlib

here = pathlib.Path(__file__).resolve().parent
GOOD_INPUT = '"input": {"channels": 1, "height": 28, "width": 28}'
def stack(layers="", extra="", head='"format": "cnnviz.stack", "version": 1'):
    return "{" + head + ", " + GOOD_INPUT + ', "layers": [' + layers + "]" + extra + "}\n"

files = {}
index = {}
def add(name, content, location, *says, why=""):
    """A case: the file's content, the StackFileError.location expected, phrases its message must hold."""
    files[name] = content
    index[name] = {"location": location, "says": list(says), "why": why}

add("not-json.cnnviz", "format: cnnviz.stack\nlayers:\n  - Conv2d\n", "line 1, column 1", "not valid JSON", why="YAML, not JSON")
add("trailing-comma.cnnviz", stack('{"type": "ReLU"},'), "line 1, column 123", "not valid JSON", why="a comma before ]")
add("not-utf8.cnnviz", stack('{"type": "ReLU", "name": "caf\xe9"}').encode("latin-1"), "", "not UTF-8 text (byte 134)")
add("utf16.cnnviz", stack().encode("utf-16"), "", "not UTF-8 text (byte 0)")
add("empty.cnnviz", b"", "", "the file is empty")
add("whitespace.cnnviz", b"  \n\t\n", "", "the file is empty")
add("array.cnnviz", '[{"type": "Conv2d"}]', "", "expected a JSON object", "got a list")
add("string.cnnviz", '"cnnviz.stack"', "", "expected a JSON object", "got a string")
add("wrong-format.cnnviz", stack(head='"format": "keras.model", "version": 1'), "format", 'expected "cnnviz.stack", got "keras.model"')
add("no-format.cnnviz", '{"version": 1, "layers": []}', "format", 'expected "cnnviz.stack", got null')
add("newer-version.cnnviz", stack(head='"format": "cnnviz.stack", "version": 7'), "version", "the file is version 7", "reads versions up to 2", "update cnnviz")
add("version-zero.cnnviz", stack(head='"format": "cnnviz.stack", "version": 0'), "version", "expected a whole number ≥ 1, got 0")
add("version-string.cnnviz", stack(head='"format": "cnnviz.stack", "version": "1"'), "version", 'expected a whole number ≥ 1, got "1"')
add("unknown-top-key.cnnviz", stack(extra=', "weights": "model.pt"'), "weights", "unknown key", "format, version, name")
add("no-input.cnnviz", '{"format": "cnnviz.stack", "version": 1, "layers": []}', "input", "missing", '"channels": C')
add("no-layers.cnnviz", '{"format": "cnnviz.stack", "version": 1, ' + GOOD_INPUT + '}', "layers", "missing; expected a list of layers")
add("layers-object.cnnviz", '{"format": "cnnviz.stack", "version": 1, ' + GOOD_INPUT + ', "layers": {"type": "ReLU"}}', "layers", "expected a list of layers, got an object")
add("input-zero.cnnviz", stack().replace('"height": 28, "width": 28', '"height": 0, "width": 0'), "input.height", "0 is out of range", "from 1 to 4096")
add("input-huge.cnnviz", stack().replace('"height": 28', '"height": 100000'), "input.height", "100000 is out of range", "from 1 to 4096")
add("input-channels.cnnviz", stack().replace('"channels": 1', '"channels": 1000000000'), "input.channels", "1000000000 is out of range", "from 1 to 64")
add("input-float.cnnviz", stack().replace('"width": 28', '"width": 28.5'), "input.width", "expected an integer from 1 to 4096, got 28.5")
add("input-extra.cnnviz", stack().replace('"width": 28', '"width": 28, "depth": 3'), "input.depth", "unknown key", "channels, height, width")
add("unknown-type.cnnviz", stack('{"type": "Conv3d", "params": {"out_channels": 4, "kernel_size": 3}}'), "layers[0].type", 'unknown layer type "Conv3d"', "Conv2d, MaxPool2d")
add("type-os-system.cnnviz", stack('{"type": "ReLU"}, {"type": "os.system", "params": {"command": "touch /tmp/cnnviz-pwned"}}'), "layers[1].type", 'unknown layer type "os.system"', why="a file is never code")
add("type-import.cnnviz", stack('{"type": "__import__", "params": {"name": "os"}}'), "layers[0].type", 'unknown layer type "__import__"', why="a file is never code")
add("type-dotted.cnnviz", stack('{"type": "torch.nn.Conv2d", "params": {"out_channels": 4, "kernel_size": 3}}'), "layers[0].type", 'unknown layer type "torch.nn.Conv2d"')
add("type-missing.cnnviz", stack('{"params": {"out_channels": 4}}'), "layers[0].type", "unknown layer type null")
add("type-loss-as-layer.cnnviz", stack('{"type": "CrossEntropyLoss"}'), "layers[0].type", 'unknown layer type "CrossEntropyLoss"')
add("layer-not-object.cnnviz", stack('"ReLU"'), "layers[0]", 'expected an object with a "type", got a string')
add("layer-extra-key.cnnviz", stack('{"type": "ReLU", "weights": [1, 2]}'), "layers[0].weights", "unknown key", "type, params, name")
add("unknown-keyword.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "filters": 4}}'), "layers[0].params.filters", "Conv2d has no keyword 'filters'", "out_channels, kernel_size")
add("device-keyword.cnnviz", stack('{"type": "Linear", "params": {"out_features": 4, "device": "cuda"}}'), "layers[0].params.device", "Linear has no keyword 'device'")
add("missing-required.cnnviz", stack('{"type": "Conv2d", "params": {"kernel_size": 3}}'), "layers[0].params", "Conv2d needs out_channels", "an integer from 1 to 16384")
add("params-list.cnnviz", stack('{"type": "Conv2d", "params": [4, 3]}'), "layers[0].params", "expected an object of keywords, got a list")
add("kernel-string.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": "3"}}'), "layers[0].params.kernel_size", "expected an integer or a list of two integers (height, width), got '3'")
add("kernel-bool.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": true}}'), "layers[0].params.kernel_size", "got true")
add("kernel-float.cnnviz", stack('{"type": "MaxPool2d", "params": {"kernel_size": 2.0}}'), "layers[0].params.kernel_size", "got 2.0")
add("kernel-zero.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 0}}'), "layers[0].params.kernel_size", "0 is out of range", "from 1 to 1024")
add("kernel-three.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": [3, 3, 3]}}'), "layers[0].params.kernel_size", "a list of 3")
add("kernel-pair-bad-item.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": [3, -1]}}'), "layers[0].params.kernel_size", "-1 is out of range", "for each of height and width")
add("padding-full.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": "full"}}'), "layers[0].params.padding", "'same' or 'valid'", "got 'full'")
add("padding-negative.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding": -1}}'), "layers[0].params.padding", "-1 is out of range", "from 0 to 2048")
add("pool-padding-same.cnnviz", stack('{"type": "MaxPool2d", "params": {"kernel_size": 2, "padding": "same"}}'), "layers[0].params.padding", "got 'same'")
add("padding-mode.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": 3, "padding_mode": "mirror"}}'), "layers[0].params.padding_mode", "'zeros', 'reflect', 'replicate', 'circular'", "got 'mirror'")
add("channels-absurd.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 1000000000000, "kernel_size": 3}}'), "layers[0].params.out_channels", "1000000000000 is out of range", "from 1 to 16384")
add("features-absurd.cnnviz", stack('{"type": "Flatten"}, {"type": "Linear", "params": {"out_features": 99999999999}}'), "layers[1].params.out_features", "out of range", "1048576")
add("number-too-long.cnnviz", stack('{"type": "Linear", "params": {"out_features": 1' + "0" * 5000 + '}}'), "layers[0].params.out_features", "a number with 5,001 digits")
add("number-201-digits.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 6, "kernel_size": 1' + "0" * 200 + '}}'), "layers[0].params.kernel_size", "a number with 201 digits", why="named where it stands, as every other refusal")
add("float-overflow.cnnviz", stack('{"type": "Dropout", "params": {"p": 1e400}}'), "layers[0].params.p", "got inf")
add("dropout-p.cnnviz", stack('{"type": "Dropout", "params": {"p": 1.5}}'), "layers[0].params.p", "1.5 is out of range", "from 0 to 1")
add("nan.cnnviz", stack('{"type": "LeakyReLU", "params": {"negative_slope": NaN}}'), "", "NaN is not a number JSON allows")
add("infinity.cnnviz", stack('{"type": "Dropout", "params": {"p": -Infinity}}'), "", "-Infinity is not a number JSON allows")
add("duplicate-key.cnnviz", stack('{"type": "ReLU", "type": "Sigmoid"}'), "", "the key 'type' appears twice")
add("duplicate-top-key.cnnviz", stack(extra=', "name": "a", "name": "b"'), "", "the key 'name' appears twice")
add("surrogate.cnnviz", stack('{"type": "ReLU", "name": "x\\ud800"}'), "layers[0].name", "\\ud800", "surrogate")
add("name-not-string.cnnviz", stack(extra=', "name": 42'), "name", "expected a string, got a number")
add("name-huge.cnnviz", stack(extra=', "name": "' + "x" * 10001 + '"'), "name", "longer than 10000 characters")
add("layer-name-huge.cnnviz", stack('{"type": "ReLU", "name": "' + "x" * 201 + '"}'), "layers[0].name", "expected a short string label")
add("loss-unknown.cnnviz", stack(extra=', "loss": {"type": "MSELoss"}'), "loss.type", 'unknown loss "MSELoss"', "CrossEntropyLoss, NLLLoss")
add("loss-weight-negative.cnnviz", stack(extra=', "loss": {"type": "CrossEntropyLoss", "params": {"weight": [1, -2]}}'), "loss.params.weight", "item 1", "≥ 0")
add("loss-reduction.cnnviz", stack(extra=', "loss": {"type": "NLLLoss", "params": {"reduction": "avg"}}'), "loss.params.reduction", "'mean', 'sum', 'none'")
add("loss-smoothing-nll.cnnviz", stack(extra=', "loss": {"type": "NLLLoss", "params": {"label_smoothing": 0.1}}'), "loss.params.label_smoothing", "NLLLoss has no keyword 'label_smoothing'")
add("training-device.cnnviz", stack(extra=', "training": {"device": "cuda:0; rm -rf /"}'), "training.device", "expected auto, cpu, cuda, cuda:N or mps", "rm -rf")
add("training-device-tpu.cnnviz", stack(extra=', "training": {"device": "tpu"}'), "training.device", 'got "tpu"')
add("training-data.cnnviz", stack(extra=', "training": {"data": "imagenet"}'), "training.data", "digits, fashion-mnist, shapes", 'got "imagenet"')
add("training-lr.cnnviz", stack(extra=', "training": {"lr": 0}'), "training.lr", "a number above 0")
add("training-batch.cnnviz", stack(extra=', "training": {"batch_size": 1000000}'), "training.batch_size", "out of range", "from 1 to 4096")
add("training-extra.cnnviz", stack(extra=', "training": {"epochs": 3}'), "training.epochs", "unknown key", "optimizer")
add("training-list.cnnviz", stack(extra=', "training": ["adam"]'), "training", "expected an object, got a list")
add("deep-params.cnnviz", stack('{"type": "Conv2d", "params": {"out_channels": 4, "kernel_size": ' + "[" * 50 + "3" + "]" * 50 + '}}'), "layers[0].params.kernel_size" + "[0]" * 29, "nested too deeply", "at most 33 levels")

for name, content in files.items():
    data = content if isinstance(content, bytes) else content.encode("utf-8")
    (here / name).write_bytes(data)
(here / "index.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
print(len(files))
