"""`cnndsl train FILE --data digits`: train a network with the torch backend on a small data set.

One process, or several under `torchrun` (DistributedDataParallel: gloo on CPU, nccl on GPU,
found from the RANK/WORLD_SIZE/LOCAL_RANK variables torchrun sets). `--batch-size` is the
global batch: each of N processes takes batch/N samples of it, and DDP averages the
gradients, so N processes follow one process's run (up to float rounding) for a network
without dropout or batch norm. Each epoch's order is a `DistributedSampler`'s permutation of
the training set (seeded by --seed and the epoch), and only whole global batches are used.
Only rank 0 prints and writes checkpoints.

Loss and prediction follow the network's last layer:
- `rbf` (LeNet-5): outputs are squared distances to fixed codes, smaller is better. The loss
  is the 1998 paper's MAP criterion (its equation 9), E = y_D + log(e^-j + sum_i e^-y_i) with
  j = 10: cross-entropy on the negated distances plus a constant "rubbish" class. It trains
  markedly better here than plain cross-entropy on negated distances (j → ∞). Prediction is
  the argmin.
- `softmax`: negative log-likelihood of the probabilities; argmax.
- anything else: cross-entropy on the logits; argmax.
A network with several outputs (auxiliary classifiers) trains on the first plus 0.3 × the
others, as GoogLeNet did, and predicts with the first.

Optimizer: Adam, default lr 3e-3, batch 32, 20 epochs (LeNet-5 on digits: about 98% test
accuracy in under half a minute on two CPU cores). A checkpoint holds the model, the
optimizer, the position (epoch, batch within it, global step), the settings and the loss of
every step; `--resume` continues exactly where it stopped (the same batches follow).

torch is imported only inside `run`, so `cnndsl --help` stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from cnndsl.tools.data import DATASETS, DataError, load
from cnndsl.tools.options import compile_for

DEFAULT_EPOCHS = 20
DEFAULT_LR = 3e-3
DEFAULT_BATCH = 32
DEFAULT_SEED = 0
RBF_REJECT = 10.0  # j in the MAP criterion: the constant distance of the "rubbish" class
AUX_WEIGHT = 0.3
FORMAT = "cnndsl-train/1"

DESCRIPTION = """\
Train FILE's network with the torch backend on a small built-in data set and print its
test accuracy. digits: scikit-learn's 8x8 handwritten digits, resized to the network's
input, standardised, split 80/20 (stratified, fixed seed). Runs under torchrun too:
--batch-size is then the global batch, split across the processes."""

EPILOG = """\
loss: an `rbf` last layer (distances) uses LeNet-5's MAP criterion and predicts the argmin;
other networks use cross-entropy and the argmax.

examples:
  cnndsl train zoo/lenet5.cnn --data digits                 about 98% in 10-30 s on 2 CPU cores
  cnndsl train zoo/lenet5.cnn --data digits --checkpoint lenet.pt
  cnndsl train zoo/lenet5.cnn --data digits --resume lenet.pt --epochs 30
  cnndsl train zoo/resnet_cifar.cnn --data digits --epochs 5 --device cuda
  torchrun --nproc_per_node=2 -m cnndsl.cli train zoo/lenet5.cnn --data digits
"""


class TrainError(Exception):
    """A training run that cannot start (the message says why)."""


@dataclass
class TrainResult:
    steps: int
    epochs_done: int
    losses: list[float] = field(default_factory=list)
    correct: int = 0
    total: int = 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_command(subparsers: Any, common: Any) -> None:
    p = subparsers.add_parser("train", help="train a network on a small built-in data set (torch)",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", metavar="FILE", help="a .cnn file that defines a network")
    p.add_argument("--data", default="digits", choices=sorted(DATASETS),
                   help="the data set (default: digits, which ships with scikit-learn)")
    p.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS, metavar="N",
                   help=f"train until N epochs are done, counting resumed ones (default: {DEFAULT_EPOCHS})")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help=f"Adam's learning rate (default: {DEFAULT_LR:g}, or the checkpoint's when resuming)")
    p.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                   help=f"global batch size, split across torchrun processes (default: {DEFAULT_BATCH}, "
                        "or the checkpoint's)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where to train (default: auto, cuda when available)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                   help="CPU threads per process (default: $OMP_NUM_THREADS, else 1: small networks train "
                        "fastest on one thread, and many threads crawl on a busy machine)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"seed of the initial weights and the shuffling (default: {DEFAULT_SEED}, "
                        "or the checkpoint's)")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="save model, optimizer and position to PATH after each epoch and at the end "
                        "(default with --resume: the resumed file)")
    p.add_argument("--resume", metavar="PATH", help="continue the run saved in PATH")
    p.add_argument("--max-steps", type=_positive_int, metavar="N",
                   help="stop once N optimizer steps are done in all, counting resumed ones (for quick runs)")
    common(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        train(args)
    except (TrainError, DataError) as err:
        print(f"cnndsl train: error: {err}", file=sys.stderr)
        return 1
    return 0


def _dist_env() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's variables; (1, 0, 0) without them."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, 0
    rank = int(os.environ.get("RANK", "0"))
    return world, rank, int(os.environ.get("LOCAL_RANK", str(rank)))


def _device(choice: str, local_rank: int):  # noqa: ANN202
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is available (use --device cpu)")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def _criterion(kind: str):  # noqa: ANN202
    """(loss(output, target), predict(output)) for a network whose last layer is KIND."""
    import torch
    import torch.nn.functional as F

    if kind == "rbf":
        def rbf_loss(dist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            logits = torch.cat([-dist, dist.new_full((dist.shape[0], 1), -RBF_REJECT)], dim=1)
            return F.cross_entropy(logits, target)

        return rbf_loss, lambda out: out.argmin(dim=1)
    if kind == "softmax":
        return (lambda out, target: F.nll_loss(out.clamp_min(1e-12).log(), target)), lambda out: out.argmax(dim=1)
    return F.cross_entropy, lambda out: out.argmax(dim=1)


def _load_checkpoint(path: str) -> dict[str, Any]:
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise TrainError(f"--resume {path}: not a cnndsl train checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise TrainError(f"--resume {path}: not a cnndsl train checkpoint")
    return ckpt


def _save_checkpoint(path: str, state: dict[str, Any]) -> None:
    import torch

    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def _progress(total: int, desc: str, enabled: bool):  # noqa: ANN202
    """A tqdm bar on a terminal; None otherwise (plain lines are printed per epoch)."""
    if not enabled or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=False, file=sys.stderr, dynamic_ncols=True)


def train(args: argparse.Namespace) -> TrainResult:
    """Run `cnndsl train` (the parsed ARGS); print progress on rank 0 and return the result."""
    import torch

    world, rank, local_rank = _dist_env()
    device = _device(args.device, local_rank)
    threads_before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(args.threads or _env_threads() or 1)
    try:
        return _train(args, world, rank, local_rank, device)
    finally:
        torch.set_num_threads(threads_before)


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def _train(args: argparse.Namespace, world: int, rank: int, local_rank: int, device: Any) -> TrainResult:
    import torch  # the training run's heavy dependency, imported only when it runs

    main_rank = rank == 0
    ckpt = _load_checkpoint(args.resume) if args.resume else None
    seed = args.seed if args.seed is not None else (ckpt["seed"] if ckpt else DEFAULT_SEED)
    batch = args.batch_size or (ckpt["batch_size"] if ckpt else DEFAULT_BATCH)
    if batch % world:
        raise TrainError(f"--batch-size {batch} is the global batch: it must divide among {world} processes")
    save_to = args.checkpoint or args.resume

    if not main_rank:
        args.no_warnings = True
    net = compile_for(args, args.file)
    graph = net.graph
    inputs, outputs = graph.graph["inputs"], graph.graph["outputs"]
    if len(inputs) != 1:
        raise TrainError(f"{net.name} has {len(inputs)} inputs; training needs one image input")
    data = load(args.data, tuple(graph.nodes[inputs[0]]["shape"]))
    for out in outputs:
        shape = tuple(graph.nodes[out]["shape"])
        if shape != (data.classes,):
            raise TrainError(f"{args.data} has {data.classes} classes but {net.name}'s output `{out}` has shape "
                             f"{'x'.join(map(str, shape))} (try --set classes={data.classes})")
    kind = graph.nodes[outputs[0]]["op"]
    steps_per_epoch = len(data.y_train) // batch
    if steps_per_epoch == 0:
        raise TrainError(f"--batch-size {batch} is larger than the training set ({len(data.y_train)} samples)")

    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _fit(args, net, data, kind, device, world, rank, seed, batch, steps_per_epoch, ckpt, save_to)
    finally:
        if world > 1:
            dist.destroy_process_group()


def _fit(args, net, data, kind, device, world, rank, seed, batch, steps_per_epoch, ckpt, save_to) -> TrainResult:  # noqa: ANN001
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    main_rank = rank == 0
    say = print if main_rank else (lambda *a, **k: None)

    torch.manual_seed(seed)
    net.check_memory("training", batch=batch, training=True)
    module = net.to_torch().to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=args.lr or DEFAULT_LR)
    step, epoch, offset, losses = 0, 0, 0, []
    if ckpt is not None:
        try:
            module.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise TrainError(f"--resume {args.resume}: does not fit {net.name}: {str(err).splitlines()[0]}") from None
        if args.lr:
            for group in optimizer.param_groups:
                group["lr"] = args.lr
        step, epoch, offset, losses = ckpt["step"], ckpt["epoch"], ckpt["offset"], list(ckpt["losses"])
        if ckpt["batch_size"] != batch and offset:  # another batch size: the interrupted epoch starts over
            offset = 0
    model = module
    if world > 1:
        model = DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn, predict = _criterion(kind)

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    sampler = DistributedSampler(data.y_train, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    per_rank = batch // world
    lr = optimizer.param_groups[0]["lr"]

    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    procs = f", {world} processes of {per_rank}" if world > 1 else ""
    say(f"{net.name}: {params:,} trainable parameters; {data.name}: {len(y_train)} train / {len(y_test)} test "
        f"as {'x'.join(map(str, x_train.shape[1:]))}")
    say(f"loss: {'MAP criterion on rbf distances, predict argmin' if kind == 'rbf' else 'cross-entropy, argmax'}; "
        f"Adam lr {lr:g}, batch {batch}{procs}, {steps_per_epoch} steps/epoch, seed {seed}, {device}")
    if ckpt is not None:
        say(f"resumed from {args.resume} at step {step} (epoch {epoch + 1}, step {offset} of it)")

    def evaluate() -> int:
        module.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(y_test), 512):
                out = module(x_test[i:i + 512])
                out = out[0] if isinstance(out, tuple) else out
                correct += int((predict(out) == y_test[i:i + 512]).sum())
        module.train()
        return correct

    def state(correct: int) -> dict[str, Any]:
        return {"format": FORMAT, "network": net.name, "file": args.file, "data": data.name,
                "model": module.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "epoch": epoch, "offset": offset, "steps_per_epoch": steps_per_epoch,
                "batch_size": batch, "seed": seed, "losses": losses, "test_accuracy": correct / len(y_test)}

    module.train()
    correct = None
    max_steps = args.max_steps
    while epoch < args.epochs and not (max_steps and step >= max_steps):
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler), dtype=torch.long, device=device)
        todo = steps_per_epoch - offset if not max_steps else min(steps_per_epoch - offset, max_steps - step)
        bar = _progress(todo, f"epoch {epoch + 1}/{args.epochs}", main_rank)
        start, epoch_losses = time.perf_counter(), []
        for k in range(offset, offset + todo):
            idx = order[k * per_rank:(k + 1) * per_rank]
            out = model(x_train[idx])
            target = y_train[idx]
            if isinstance(out, tuple):
                loss = loss_fn(out[0], target) + AUX_WEIGHT * sum(loss_fn(o, target) for o in out[1:])
            else:
                loss = loss_fn(out, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            logged = loss.detach()
            if world > 1:
                logged = logged.clone()
                dist.all_reduce(logged)
                logged /= world
            epoch_losses.append(float(logged))
            step += 1
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{epoch_losses[-1]:.4g}", refresh=False)
        if bar is not None:
            bar.close()
        losses.extend(epoch_losses)
        shown = epoch + 1
        offset += todo
        if offset == steps_per_epoch:
            epoch, offset = epoch + 1, 0
        correct = evaluate()
        part = "" if offset == 0 else f" ({offset}/{steps_per_epoch} steps)"
        say(f"epoch {shown}/{args.epochs}{part}  step {step}  loss {sum(epoch_losses) / len(epoch_losses):.4f}  "
            f"test accuracy {correct / len(y_test):.2%}  {time.perf_counter() - start:.1f} s", flush=True)
        if save_to and main_rank:
            _save_checkpoint(save_to, state(correct))
    if correct is None:  # nothing left to train: report the loaded weights
        correct = evaluate()
        say(f"nothing to train: step {step} and epoch {epoch} already reached")
    say(f"test accuracy: {correct / len(y_test):.2%} ({correct}/{len(y_test)})")
    if save_to:
        say(f"checkpoint: {save_to} (step {step})")
    return TrainResult(step, epoch, losses, correct, len(y_test))
