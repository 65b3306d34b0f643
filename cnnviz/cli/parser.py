"""The ``cnnviz`` command line: subcommands, options and their ranges (the file format's, where both have one)."""
from __future__ import annotations

import argparse

from cnnviz import __version__
from cnnviz.core.model import files
from cnnviz.core.model.stack import SCHEDULES
from cnnviz.core.model.text import for_terminal

SUBCOMMANDS = ("summary", "train", "export", "import", "explain", "profile")


def _setting(name: str):
    """An argparse type for a training setting, with the same range the file format allows for it
    (``files.TRAINING_PARAMS``): one range for the command line and the file."""
    from cnnviz.core.model.layers import FLOAT
    from cnnviz.core.model.validate import check_value

    param = files.TRAINING_PARAMS[name]

    def parse(text: str):
        try:
            value = float(text) if param.kind == FLOAT else int(text)
        except ValueError:
            kind = "a number" if param.kind == FLOAT else "a whole number"
            raise argparse.ArgumentTypeError(f"expected {kind}, got {_quoted(text)}") from None
        problem = check_value(param, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    parse.__name__ = name  # argparse names the type in its messages
    return parse


def _positive_float(text: str) -> float:
    """A learning rate: any positive finite number (a huge one is how a person sees training diverge)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {_quoted(text)}") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {_quoted(text)}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _quoted(text: str) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return repr(for_terminal(shown))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnviz",
        description="Explore convolutional networks: exact shapes, real PyTorch runs, live views. "
                    "Without a subcommand, opens the explorer window (on FILE if given).",
        epilog="Exit status: 0 ok, 1 invalid stack, 2 unreadable file or bad command line (absent device, "
               "unknown data set), 3 internal error, 4 training failed (NaN, out of memory), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"cnnviz {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(SUBCOMMANDS) + "}")

    p = sub.add_parser("summary", help="per-layer table: output shapes, parameters, errors and warnings")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--json", action="store_true", help="print one JSON object (format cnnviz.summary)")

    p = sub.add_parser("train", help="train headless on a bundled data set and report progress")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--data", help="digits, fashion-mnist, shapes, or folder:PATH (default: the file's, else "
                                  "fashion-mnist)")
    p.add_argument("--steps", type=_setting("steps"), help="optimizer steps (default: the file's, else 500)")
    p.add_argument("--batch-size", type=_setting("batch_size"),
                   help="samples per step, 1 to 4096 (default: the file's, else 64)")
    p.add_argument("--lr", type=_positive_float, help="learning rate (default: the file's, else 0.001)")
    p.add_argument("--optimizer", choices=("adam", "sgd"), help="default: the file's, else adam")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help="the learning rate over the run: constant, or cosine (annealed from --lr to 0 over the "
                        "run's --steps); default: the file's, else constant")
    p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    p.add_argument("--seed", type=_setting("seed"), help="random seed, 0 to 2**32-1 (default: the file's, else 0)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a progress bar")
    p.add_argument("--save-weights", metavar="PATH", help="write the trained weights (safetensors)")
    p.add_argument("--force", action="store_true", help="let --save-weights replace an existing stack file")
    p.add_argument("--load-weights", metavar="PATH", help="start from these weights (safetensors)")
    p.add_argument("--record", metavar="DIR", help="write the run record (JSON lines: settings, progress, "
                                                   "the held-out confusion matrix) into this folder")
    p.add_argument("--nproc-per-node", type=_at_least_one, metavar="N",
                   help="train with N ranks on this node (DistributedDataParallel through torchrun; gloo on "
                        "CPUs, nccl on GPUs); --batch-size stays the global batch")
    p.add_argument("--nnodes", type=_at_least_one, metavar="M", help="with --nproc-per-node: M nodes in all")
    p.add_argument("--node-rank", type=int, metavar="R", help="this node's rank, 0 to M-1 (torchrun's static "
                                                               "rendezvous; without it the nodes' c10d one)")
    p.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="where the nodes meet (node 0's address)")

    p = sub.add_parser("export", help="write the stack as PyTorch code or an ONNX model")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--to", required=True, choices=("python", "onnx", "train-script"),
                   help="the output format (train-script: a standalone training script for torchrun)")
    p.add_argument("-o", "--output", help="output path (python: default standard output; onnx: default "
                                          "FILE's name with .onnx in the current folder)")
    p.add_argument("--style", choices=("module", "functional"), default="module",
                   help="python only: nn.Sequential of nn layers (default), or explicit parameters with "
                        "torch.nn.functional")
    p.add_argument("--weights", metavar="PATH",
                   help="trained weights to include (safetensors); with --to python, -o NAME.py is needed "
                        "and they are written beside it as NAME.safetensors")
    p.add_argument("--force", action="store_true", help="let -o replace an existing stack file")

    p = sub.add_parser("explain", help="the arithmetic of one output element of a layer, on a real sample")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--layer", required=True, metavar="PATH",
                   help="the layer's path: \"0\" for the first layer (a Conv2d, MaxPool2d, AvgPool2d or Linear)")
    p.add_argument("--at", required=True, metavar="C,Y,X",
                   help="the output element: C,Y,X for C×H×W maps, J for a Linear's feature")
    p.add_argument("--data", help="digits, fashion-mnist, shapes, or folder:PATH (default: the file's, else "
                                  "fashion-mnist)")
    p.add_argument("--sample", type=int, default=0, metavar="N",
                   help="which image of the held-out split (default 0)")
    p.add_argument("--weights", metavar="PATH", help="trained weights (safetensors); default: the stack's seed")
    p.add_argument("--json", action="store_true", help="print one JSON object (format cnnviz.explain)")

    p = sub.add_parser("profile", help="per-layer forward/backward time and memory of a training step, measured")
    p.add_argument("file", help="a .cnnviz stack file")
    p.add_argument("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: the "
                                    "file's, else auto)")
    p.add_argument("--batch-size", type=_setting("batch_size"),
                   help="samples per step, 1 to 4096 (default: the file's, else 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object (format cnnviz.profile)")

    from cnnviz.cli.import_cmd import add_parser as add_import_parser

    add_import_parser(sub)

    return parser
