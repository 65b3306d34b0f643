"""``cnnviz export FILE --to train-script``: a standalone training script for one process or torchrun (SPEC §3.5).

The script needs torch, numpy, Pillow and safetensors only. Its model code is
:func:`cnnviz.core.export.python.to_python`'s (module style, blocks included);
the stack's ``training`` block becomes its defaults. It runs alone
(``python train.py --data FOLDER``) or as N ranks under
``torchrun --nproc-per-node N train.py --data FOLDER`` (gloo on CPUs, nccl on
CUDA; DistributedDataParallel, each rank its slice of the same shuffled global
batch, losses over the global count, SyncBatchNorm on GPUs). ``--data`` is an
image folder (one subfolder per class) or, where cnnviz is installed, a
bundled set (``digits``, ``fashion-mnist``, ``shapes``). It prints the JSON
lines of ``cnnviz train --json`` (``step``, ``eval``, ``done`` with
``world_size``) and every ``--checkpoint-every`` steps writes, in
``--checkpoint-dir``, ``step-N.safetensors`` (the weights, in the
``cnnviz.weights`` format that ``cnnviz train --load-weights`` reads) and
beside it ``step-N.state.safetensors`` (the optimizer state, the random state
of every rank, the batch order and position). ``--resume`` continues from the
last complete checkpoint to the same weights as an uninterrupted run.
``--schedule cosine`` anneals the learning rate from ``--lr`` to 0 over
``--steps`` by cnnviz's formula, from the step count alone (a resumed run
goes on along the same curve; nothing more is saved).

Text from the stack reaches the script only through ``to_python`` (escaped
docstrings and comments) and ``repr`` literals; the result is parsed before it
is returned. Generating it imports no torch (the weights' architecture key is
computed by :mod:`cnnviz.core.run.weights`, imported lazily).
"""
from __future__ import annotations

import json

from cnnviz.core.export.python import ExportError, _check_code, to_python
from cnnviz.core.model.stack import Stack, TrainingConfig

MAIN_MARK = '\n\nif __name__ == "__main__":'


def to_train_script(stack: Stack) -> str:
    """The script's source (see the module docstring)."""
    from cnnviz.core.run.weights import FORMAT, VERSION, architecture_key

    model_code = to_python(stack, "module")
    cut = model_code.rfind(MAIN_MARK)
    if cut < 0:
        raise ExportError("the model code has no main block to replace; this is a bug in cnnviz")
    config = stack.training or TrainingConfig()
    defaults = {"data": config.data, "steps": int(config.steps), "batch_size": int(config.batch_size),
                "lr": float(config.lr), "optimizer": config.optimizer, "seed": int(config.seed),
                "momentum": float(config.momentum), "weight_decay": float(config.weight_decay),
                "schedule": config.schedule}
    metadata = {"format": FORMAT, "version": VERSION, "stack_name": stack.name,
                "architecture": architecture_key(stack), "layers": json.dumps([layer.type for layer in stack.layers])}
    head = model_code[:cut].replace('"""\nimport torch\nfrom torch import nn', '"""\n' + _IMPORTS, 1)
    if _IMPORTS not in head:
        raise ExportError("the model code's imports were not found; this is a bug in cnnviz")
    code = (head + "\n\n# The stack's training block: the defaults of the command line.\n"
            f"DEFAULTS = {defaults!r}\n"
            "# The metadata of cnnviz's weights files (cnnviz.weights), so cnnviz reads the checkpoints.\n"
            f"WEIGHTS_METADATA = {metadata!r}\n" + _TRAINING)
    _check_code(code)
    return code


_IMPORTS = """import argparse
import datetime
import json
import math
import os
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn"""


_TRAINING = r'''

def rank_env():
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) alone."""
    if all(os.environ.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")):
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    return 0, 1, 0


def load_folder(folder, seed, held_out=0.2):
    """An image folder, one subfolder per class: images at INPUT_SHAPE in [0, 1], a seeded held-out split."""
    from PIL import Image

    channels, height, width = INPUT_SHAPE
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        sys.exit(f"train.py: {folder} has no subfolders (one per class)")
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted(os.listdir(os.path.join(folder, name))):
            try:
                with Image.open(os.path.join(folder, name, file)) as img:
                    img = img.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                    array = np.asarray(img, dtype=np.float32) / 255.0
            except OSError:
                continue  # not an image
            array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            images.append(array[:channels])
            labels.append(label)
    if not images:
        sys.exit(f"train.py: no readable images in {folder}")
    x, y = np.stack(images), np.asarray(labels, dtype=np.int64)
    order = np.random.RandomState(seed).permutation(len(y))
    cut = max(1, int(round(len(y) * held_out))) if len(y) > 1 else 0
    test, train = order[:cut], order[cut:]
    return (x[train], y[train]), (x[test], y[test]), classes


def load_data(name, seed):
    """(train, test, classes): a folder, or a set bundled with cnnviz (where it is installed)."""
    if os.path.isdir(name):
        return load_folder(name, seed)
    try:
        from cnnviz.core import data
    except ImportError:
        sys.exit(f"train.py: {name!r} is not a folder (and cnnviz, which has the bundled sets, is not installed)")
    split = data.load(name, INPUT_SHAPE, seed)
    return ((np.asarray(split.train.images), np.asarray(split.train.labels)),
            (np.asarray(split.test.images), np.asarray(split.test.labels)), list(split.classes))


class Batches:
    """cnnviz's batch order: one randperm per epoch from a generator seeded with the seed (the same on every
    rank); each rank takes its contiguous slice of every global batch."""

    def __init__(self, n, batch_size, seed, rank, world):
        self.n, self.batch_size, self.rank, self.world = n, batch_size, rank, world
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = None
        self.pos = 0

    def _refill(self):
        rest = self.perm[self.pos:] if self.perm is not None and self.n < self.batch_size else None
        parts = [] if rest is None else [rest]
        have = 0 if rest is None else len(rest)
        while have < self.batch_size:
            parts.append(torch.randperm(self.n, generator=self.generator))
            have += self.n
        self.perm = parts[0] if len(parts) == 1 else torch.cat(parts)
        self.pos = 0

    def next(self):
        """(this rank's indices, the global batch's indices)."""
        if self.perm is None or self.pos + self.batch_size > len(self.perm):
            self._refill()
        index = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        share = self.batch_size // self.world
        return index[self.rank * share:(self.rank + 1) * share], index


def rng_state(device):
    state = {"rng.cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["rng.cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device):
    torch.set_rng_state(state["rng.cpu"])
    if device.type == "cuda" and "rng.cuda" in state:
        torch.cuda.set_rng_state(state["rng.cuda"], device)


def save_checkpoint(folder, step, model, optimizer, batches, device, rank, world):
    """step-N.safetensors (cnnviz.weights) and step-N.state.safetensors beside it; every rank its random state.
    Written through temporary names and renamed, the weights last: a checkpoint is complete once they exist."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, f"step-{step:08d}")
    states = [None] * world
    mine = {k: v.clone() for k, v in rng_state(device).items()}
    if world > 1:
        dist.all_gather_object(states, {k: v.cpu() for k, v in mine.items()})
    else:
        states = [mine]
    if rank != 0:
        return
    tensors, scalars = {}, {}
    opt = optimizer.state_dict()
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    for r, state in enumerate(states):
        for key, value in state.items():
            tensors[f"{key}.{r}"] = value.cpu().contiguous()
    tensors["data.generator"] = batches.generator.get_state()
    tensors["data.perm"] = (batches.perm if batches.perm is not None else torch.zeros(0, dtype=torch.long)).cpu()
    meta = {"format": "cnnviz.train-state", "step": str(step), "data_pos": str(batches.pos),
            "data_perm": str(batches.perm is not None), "world_size": str(world),
            "param_groups": json.dumps(opt["param_groups"]), "optimizer_scalars": json.dumps(scalars)}
    save_file(tensors, base + ".state.tmp", metadata=meta)
    os.replace(base + ".state.tmp", base + ".state.safetensors")
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(weights, base + ".tmp", metadata=dict(WEIGHTS_METADATA, step=str(step)))
    os.replace(base + ".tmp", base + ".safetensors")


def last_checkpoint(folder):
    """The base name of the last complete checkpoint in folder (its weights and state both there), or None."""
    if not os.path.isdir(folder):
        return None
    steps = sorted(name[5:13] for name in os.listdir(folder)
                   if name.startswith("step-") and name.endswith(".safetensors") and ".state." not in name)
    for step in reversed(steps):
        base = os.path.join(folder, f"step-{step}")
        if os.path.exists(base + ".state.safetensors"):
            return base
    return None


def load_checkpoint(base, model, optimizer, batches, device, rank, world):
    """Weights, optimizer state, this rank's random state and the batch position; returns the step."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    model.load_state_dict(load_file(base + ".safetensors"))
    state = load_file(base + ".state.safetensors")
    with safe_open(base + ".state.safetensors", "pt") as f:
        meta = f.metadata()
    if int(meta["world_size"]) != world:
        sys.exit(f"train.py: {base} was written by {meta['world_size']} ranks, not {world}: the random state "
                 "of each rank cannot be carried over")
    entries = {}
    for key, value in state.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            entries.setdefault(int(index), {})[name] = value.to(device)
    for key, value in json.loads(meta["optimizer_scalars"]).items():
        index, name = key.split(".", 1)
        entries.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": entries, "param_groups": json.loads(meta["param_groups"])})
    set_rng_state({k.rsplit(".", 1)[0]: v for k, v in state.items()
                   if k.startswith("rng.") and k.endswith(f".{rank}")}, device)
    batches.generator.set_state(state["data.generator"])
    batches.perm = state["data.perm"] if meta["data_perm"] == "True" else None
    batches.pos = int(meta["data_pos"])
    return int(meta["step"])


def per_sample_loss():
    """The stack's loss with reduction="none", and how the batch's losses are divided: (fn, reduction)."""
    loss = build_loss()
    reduction = loss.reduction
    loss.reduction = "none"
    return loss, reduction


def denominator(y_all, loss, reduction):
    """What the single process's loss divides the global batch's per-sample losses by."""
    if reduction == "sum":
        return torch.ones((), device=y_all.device)
    if reduction == "none":
        return torch.tensor(float(len(y_all)), device=y_all.device)
    kept = y_all != loss.ignore_index
    if loss.weight is not None:
        safe = torch.where(kept, y_all, torch.zeros_like(y_all))
        return (loss.weight[safe] * kept).sum()
    return kept.sum().float()


def evaluate(model, x, y, loss, chunk=1024):
    """(mean per-sample loss, accuracy without the ignore_index rows) on the held-out split, in eval mode."""
    was = model.training
    model.eval()
    total, correct, counted = 0.0, 0, 0
    with torch.no_grad():
        for start in range(0, len(y), chunk):
            out = model(x[start:start + chunk])
            target = y[start:start + chunk]
            total += float(loss(out, target).sum())
            keep = target != loss.ignore_index
            correct += int(((out.argmax(1) == target) & keep).sum())
            counted += int(keep.sum())
    model.train(was)
    return total / max(1, len(y)), correct / counted if counted else 0.0


def scheduled_lr(lr, schedule, step, horizon):
    """The rate of the step taken after ``step`` steps: constant, or cosine from lr to 0 at ``horizon`` (the
    run's --steps), as cnnviz and torch's CosineAnnealingLR(T_max=horizon, eta_min=0) have it."""
    if schedule == "constant":
        return lr
    horizon = max(1, int(horizon))
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(max(0, int(step)), horizon) / horizon))


def emit(obj):
    print(json.dumps(obj), flush=True)


def parse_args(argv=None):
    d = DEFAULTS
    p = argparse.ArgumentParser(description="Train the exported stack (alone, or under torchrun).")
    p.add_argument("--data", default=d["data"], help="an image folder (one subfolder per class), or a set "
                                                     "bundled with cnnviz: digits, fashion-mnist, shapes")
    p.add_argument("--steps", type=int, default=d["steps"], help="optimizer steps in all")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="the global batch (all ranks)")
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--optimizer", choices=("adam", "sgd"), default=d["optimizer"])
    p.add_argument("--schedule", choices=("constant", "cosine"), default=d["schedule"],
                   help="the learning rate over the run: constant, or cosine from --lr to 0 over --steps")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="K", help="0: none")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --checkpoint-dir")
    p.add_argument("--until", type=int, metavar="STEP", help="stop after this step (with a checkpoint), to "
                                                              "resume later; --steps stays the run's length")
    p.add_argument("--save-weights", metavar="PATH", help="the final weights (cnnviz.weights safetensors)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rank, world, local = rank_env()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(f"cuda:{local}" if args.device == "cuda" else args.device)
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=10))
    if args.batch_size % world:
        sys.exit(f"train.py: the batch of {args.batch_size} is global and must divide by the {world} ranks")
    (x_train, y_train), (x_test, y_test), classes = load_data(args.data, args.seed)
    mean = x_train.mean(axis=(0, 2, 3)).reshape(1, -1, 1, 1)
    std = x_train.std(axis=(0, 2, 3)).reshape(1, -1, 1, 1) + 1e-8
    x_train = torch.tensor((x_train - mean) / std, dtype=torch.float32, device=device)
    x_test = torch.tensor((x_test - mean) / std, dtype=torch.float32, device=device)
    y_train = torch.tensor(y_train, dtype=torch.long, device=device)
    y_test = torch.tensor(y_test, dtype=torch.long, device=device)

    torch.manual_seed(args.seed)  # the weights come from the seed, as in cnnviz
    model = build_model().to(device)
    if world > 1 and device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    torch.manual_seed(args.seed + rank)  # dropout's stream: each rank its own
    if device.type == "cuda":
        torch.cuda.manual_seed(args.seed + rank)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None) \
        if world > 1 else model
    loss_fn, reduction = per_sample_loss()
    loss_fn = loss_fn.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=args.lr, momentum=DEFAULTS["momentum"],
                                    weight_decay=DEFAULTS["weight_decay"])
    else:
        optimizer = torch.optim.Adam(params, lr=args.lr, weight_decay=DEFAULTS["weight_decay"])
    batches = Batches(len(y_train), args.batch_size, args.seed, rank, world)
    step = 0
    if args.resume:
        base = last_checkpoint(args.checkpoint_dir)
        if base is not None:
            step = load_checkpoint(base, model, optimizer, batches, device, rank, world)
    stop_requested = []
    signal.signal(signal.SIGINT, lambda signum, frame: stop_requested.append(signum))
    report = max(1, min(50, args.steps // 10))
    eval_every = max(report, args.steps // 5) if args.steps >= 10 else None
    until = min(args.steps, args.until) if args.until is not None else args.steps
    window_loss = torch.zeros((), device=device)
    window_correct = torch.zeros((), device=device)
    window_seen = window_steps = 0
    last_loss = None
    flags = torch.zeros(2, device=device)
    started = time.perf_counter()
    steps_run = 0
    interrupted = False
    model.train()
    while step < until:
        mine, index = batches.next()
        mine, index = mine.to(device), index.to(device)
        x, y, y_all = x_train[mine], y_train[mine], y_train[index]
        out = net(x)
        share = loss_fn(out, y).sum() / denominator(y_all, loss_fn, reduction)
        optimizer.zero_grad(set_to_none=True)
        (share * world).backward()  # DDP averages the gradients over the ranks
        finite = bool(torch.isfinite(share)) and all(bool(torch.isfinite(p.grad).all()) for p in params
                                                     if p.grad is not None)
        flags[0], flags[1] = float(not finite), float(bool(stop_requested))
        if world > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)  # every rank stops at the same step
        if flags[0]:
            if rank == 0:
                emit({"event": "error", "kind": "nonfinite", "step": step + 1,
                      "message": f"training stopped at step {step + 1}: the loss or a gradient is NaN or Inf; "
                                 f"lower the learning rate (now {args.lr:g})"})
            sys.exit(4)
        lr = scheduled_lr(args.lr, args.schedule, step, args.steps)  # from the step: a resumed run goes on alike
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        step += 1
        steps_run += 1
        with torch.no_grad():
            window_loss += share.detach()
            window_correct += (out.argmax(1) == y).sum()
        window_seen += len(y_all)
        window_steps += 1
        if step % report == 0 or step == until or flags[1]:
            values = torch.stack([window_loss, window_correct])
            if world > 1:
                dist.all_reduce(values)
            total, correct = values.tolist()
            per_step = total / window_steps
            last_loss = per_step / (window_seen / window_steps) if reduction == "sum" else per_step
            if rank == 0:
                emit({"event": "step", "step": step, "loss": round(last_loss, 6),
                      "accuracy": round(correct / window_seen, 4)})
            window_loss.zero_()
            window_correct.zero_()
            window_seen = window_steps = 0
        if args.checkpoint_every and (step % args.checkpoint_every == 0 or step == until or flags[1]):
            save_checkpoint(args.checkpoint_dir, step, model, optimizer, batches, device, rank, world)
        if eval_every and step % eval_every == 0 and rank == 0:
            test_loss, accuracy = evaluate(model, x_test, y_test, loss_fn)
            emit({"event": "eval", "step": step, "loss": round(test_loss, 6), "accuracy": round(accuracy, 4),
                  "split": "test", "n": len(y_test)})
        if flags[1]:
            interrupted = True
            break
    seconds = time.perf_counter() - started
    if rank == 0:
        test_loss, accuracy = evaluate(model, x_test, y_test, loss_fn)
        if args.save_weights:
            from safetensors.torch import save_file

            weights = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
            save_file(weights, args.save_weights, metadata=dict(WEIGHTS_METADATA))
        emit({"event": "done", "steps": step, "device": str(device), "final_loss": last_loss and round(last_loss, 6),
              "test_accuracy": round(accuracy, 4), "steps_per_second": round(steps_run / seconds, 1) if seconds else 0,
              "test_loss": round(test_loss, 6), "seconds": round(seconds, 3), "interrupted": interrupted,
              "world_size": world, "classes": list(classes)})
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
'''
