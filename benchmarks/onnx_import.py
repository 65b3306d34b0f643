"""Importing an ONNX model of about 100 nodes and 10 M parameters (issue 12's target: under 2 s).

The model is a ResNet-style stack (a stem, 14 residual blocks of two 3×3
convolutions of 192 channels with BatchNorm, a classifier head) exported by
cnnviz's own ``export --to onnx`` (torch's TorchScript exporter, BatchNorm kept).
Prints the time to read and map it (``importer.read``), to write the stack and
its weights (``importer.write``, which imports torch), and the whole
``cnnviz import`` command in a fresh process (Python and torch start-up
included), each the median of a few runs, with the target.

    python benchmarks/onnx_import.py [--blocks 14] [--channels 192] [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnviz.core.model.stack import InputSpec, Layer, Stack, residual

TARGET_S = 2.0


def make_stack(blocks: int, channels: int) -> Stack:
    conv = {"out_channels": channels, "kernel_size": 3, "padding": 1}
    layers = [Layer("Conv2d", conv), Layer("BatchNorm2d"), Layer("ReLU")]
    for _ in range(blocks):
        layers += [residual([Layer("Conv2d", conv), Layer("BatchNorm2d"), Layer("ReLU"), Layer("Conv2d", conv),
                             Layer("BatchNorm2d")]), Layer("ReLU")]
    layers += [Layer("AdaptiveAvgPool2d", {"output_size": 1}), Layer("Flatten"), Layer("Linear", {"out_features": 10})]
    return Stack("bench", InputSpec(3, 32, 32), tuple(layers))


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=14)
    parser.add_argument("--channels", type=int, default=192)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import onnx

    from cnnviz.core import importer
    from cnnviz.core.export import to_onnx

    stack = make_stack(args.blocks, args.channels)
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "bench.onnx"
        to_onnx(stack, model_path)
        model = onnx.load(str(model_path))
        nodes = len(model.graph.node)
        constant = sum(n.op_type in ("Identity", "Constant") and all(i not in ("input",) for i in n.input)
                       for n in model.graph.node)
        params = sum(int(__import__("math").prod(t.dims)) for t in model.graph.initializer)
        size = model_path.stat().st_size
        print(f"model: {nodes} nodes ({nodes - constant} of them layers and merges, {constant} Identity or Constant "
              f"on initializers), {params:,} values in initializers, {size / 2**20:.1f} MiB "
              f"(opset {model.opset_import[0].version})")
        del model

        read_s = median_time(lambda: importer.read(model_path), args.repeat)
        imported = importer.read(model_path)
        out = Path(folder) / "out.cnnviz"
        importer.write(imported, out, model_path, force=True)  # the first write imports torch: not timed
        write_s = median_time(lambda: importer.write(imported, out, model_path, force=True), args.repeat)
        command = [sys.executable, "-m", "cnnviz", "import", str(model_path), "-o", str(out), "--force"]
        cli_s = median_time(lambda: subprocess.run(command, check=True, capture_output=True), args.repeat)

    verdict = "OK" if read_s + write_s < TARGET_S else "SLOWER THAN THE TARGET"
    print(f"read and map (importer.read):              {read_s:.3f} s")
    print(f"write the stack and weights (importer.write): {write_s:.3f} s")
    print(f"import, in process (read + write):         {read_s + write_s:.3f} s   target < {TARGET_S:.0f} s: {verdict}")
    print(f"`cnnviz import` in a fresh process:        {cli_s:.3f} s   (Python, torch and onnx start-up included)")
    return 0 if read_s + write_s < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
