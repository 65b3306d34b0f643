"""Shape inference of a 50-layer stack, and of a 50-block ResNet-style stack, against torch's meta-device
forward of the same stack.

Prints both times and their ratio, measured in the same run. Targets: cnnviz's
inference at most 0.1x torch's meta forward and under 1 ms for the flat stack;
at most 0.05x for the 50 residual blocks.

    python benchmarks/shapes.py [--layers 50] [--blocks 50] [--repeat 200]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnviz.core import shapes  # noqa: E402
from cnnviz.core.model.stack import InputSpec, Layer, Stack, residual  # noqa: E402


def make_stack(n_layers: int) -> Stack:
    """A VGG-like stack of conv/BN/ReLU blocks with pooling, then a classifier head."""
    layers: list[Layer] = []
    channels = 16
    while len(layers) < n_layers - 4:
        block = len(layers) // 12
        layers += [Layer("Conv2d", {"out_channels": channels, "kernel_size": 3, "padding": 1}),
                   Layer("BatchNorm2d"), Layer("ReLU")]
        if len(layers) % 12 == 0 and block < 4:
            layers.append(Layer("MaxPool2d", {"kernel_size": 2}))
            channels = min(channels * 2, 256)
    layers = layers[:n_layers - 4]
    layers += [Layer("AdaptiveAvgPool2d", {"output_size": 1}), Layer("Flatten"), Layer("Dropout"),
               Layer("Linear", {"out_features": 10})]
    return Stack("bench", InputSpec(3, 64, 64), tuple(layers))


def make_resnet(n_blocks: int) -> Stack:
    """A ResNet-style stack: a stem, then ``n_blocks`` residual blocks (conv/BN/ReLU/conv/BN bodies; every
    eighth block halves the size and doubles the channels with a projection shortcut), then the head."""
    channels, size = 16, 64
    layers: list[Layer] = [Layer("Conv2d", {"out_channels": channels, "kernel_size": 3, "padding": 1}),
                           Layer("BatchNorm2d"), Layer("ReLU")]
    for b in range(n_blocks):
        down = b > 0 and b % 8 == 0 and size > 4
        if down:
            channels, size = min(channels * 2, 256), size // 2
        stride = 2 if down else 1
        body = [Layer("Conv2d", {"out_channels": channels, "kernel_size": 3, "stride": stride, "padding": 1,
                                 "bias": False}), Layer("BatchNorm2d"), Layer("ReLU"),
                Layer("Conv2d", {"out_channels": channels, "kernel_size": 3, "padding": 1, "bias": False}),
                Layer("BatchNorm2d")]
        shortcut = [Layer("Conv2d", {"out_channels": channels, "kernel_size": 1, "stride": stride, "bias": False}),
                    Layer("BatchNorm2d")] if down else []
        layers += [residual(body, shortcut), Layer("ReLU")]
    layers += [Layer("AdaptiveAvgPool2d", {"output_size": 1}), Layer("Flatten"), Layer("Linear", {"out_features": 10})]
    return Stack("bench-resnet", InputSpec(3, 64, 64), tuple(layers))


def compare(stack: Stack, repeat: int, target: float, label: str) -> None:
    """cnnviz's inference of ``stack`` against torch's meta-device forward of the same network, printed."""
    import torch

    from cnnviz.core.run.build import build_model

    infer = shapes.infer.__wrapped__
    report = infer(stack)
    assert report.ok, report.problem
    with torch.device("meta"):
        model = build_model(stack).eval()
        x = torch.empty(1, *stack.input.shape)

    def meta_forward():
        with torch.no_grad():
            return model(x)

    assert tuple(meta_forward().shape[1:]) == report.output_shape
    ours = time_calls(lambda: infer(stack), repeat)
    theirs = time_calls(meta_forward, repeat)
    print(f"{label}: {len(list(stack.walk()))} layers at every depth")
    print(f"  cnnviz shapes.infer:            {ours * 1e3:8.3f} ms")
    print(f"  torch meta-device forward:      {theirs * 1e3:8.3f} ms")
    print(f"  ratio:                          {ours / theirs:8.3f}x  (target <= {target}x)")


def time_calls(fn, repeat: int) -> float:
    """Median seconds per call over ``repeat`` calls (after a warm-up)."""
    for _ in range(5):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=50, help="residual blocks of the ResNet-style stack (0: skip)")
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)

    stack = make_stack(args.layers)
    infer = shapes.infer.__wrapped__  # bypass the content cache: measure the work itself
    report = infer(stack)
    assert report.ok and len(report.layers) == args.layers, report.first_error

    import torch

    from cnnviz.core.run.build import build_model

    with torch.device("meta"):
        model = build_model(stack).eval()
        x = torch.empty(1, *stack.input.shape)

    def meta_forward():
        with torch.no_grad():
            return model(x)

    def meta_build_and_forward():
        with torch.device("meta"), torch.no_grad():
            return build_model(stack).eval()(torch.empty(1, *stack.input.shape))

    assert tuple(meta_forward().shape[1:]) == report.output_shape

    ours = time_calls(lambda: infer(stack), args.repeat)
    theirs = time_calls(meta_forward, args.repeat)
    theirs_built = time_calls(meta_build_and_forward, max(20, args.repeat // 10))
    print(f"stack: {args.layers} layers, input {stack.input.shape}, torch {torch.__version__}")
    print(f"cnnviz shapes.infer:              {ours * 1e3:8.3f} ms")
    print(f"torch meta-device forward:        {theirs * 1e3:8.3f} ms")
    print(f"torch meta build + forward:       {theirs_built * 1e3:8.3f} ms")
    print(f"ratio vs meta forward:            {ours / theirs:8.3f}x  (target <= 0.1x)")
    print(f"ratio vs meta build + forward:    {ours / theirs_built:8.3f}x")
    print(f"under 1 ms:                       {'yes' if ours < 1e-3 else 'NO'}")
    if args.blocks:
        compare(make_resnet(args.blocks), max(20, args.repeat // 4), 0.05, f"{args.blocks} residual blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
