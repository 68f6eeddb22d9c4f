"""What every training example shares: command-line flags, data, optimizer, and the loop.

The loop (``fit``) shows a progress bar per epoch (loss, accuracy, samples/s), prints one
line per epoch with train and test loss/accuracy (test in eval mode), writes the metrics as
CSV and JSON, saves a checkpoint after every epoch (model, optimizer, generator and loader
state, written atomically), plots train vs test curves when matplotlib is installed, stops on
a NaN or inf loss keeping the last good checkpoint, and on Ctrl-C or SIGTERM saves a mid-epoch
checkpoint so that ``--resume`` continues exactly where it stopped.

All randomness (initial weights, data order, dropout masks) comes from one seeded
``minigrad.random.Generator``, whose state is a few integers saved in the checkpoint; that is
what makes a resumed run bit-identical to an uninterrupted one.

``--dtype float16`` or ``bfloat16`` (where offered) trains with ``minigrad.amp.MixedPrecision``:
16-bit model, float32 master weights and loss, dynamic loss scaling.
"""

import csv
import io
import json
import math
import os
import signal
import sys
import time

import numpy as np

import minigrad
from minigrad import amp as mixed_precision
from minigrad import functional as F
from minigrad import optim
from minigrad.backend import as_numpy
from minigrad.checkpoint import load_checkpoint, save_checkpoint
from minigrad.data import NORMALIZATION, DataLoader, load_dataset

DATASETS = ("mnist", "fashion-mnist", "kmnist", "mnist-t10k-split")
LOW_PRECISION = ("float16", "bfloat16")    # trained with mixed precision


def add_training_args(parser, *, epochs, batch_size, lr, momentum=0.0, optimizer="sgd",
                      dataset="mnist", dtypes=("float32", "float64")):
    """The flags every example takes, with the example's own defaults.

    ``dtypes``: the --dtype choices; an example that passes "float16" or "bfloat16" among them
    must train through ``make_mixed_precision`` and ``fit(..., amp=...)``.
    """
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--dataset", default=dataset, choices=DATASETS,
                        help=f"default: {dataset}; mnist-t10k-split trains on 8,000 of MNIST's "
                             "test digits and tests on the other 2,000 (for offline machines "
                             "without MNIST's training images)")
    parser.add_argument("--data-dir", default=None,
                        help="where the IDX files are or are downloaded to (default: "
                             "$MINIGRAD_DATA_DIR, else ~/.cache/minigrad)")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--optimizer", default=optimizer, choices=("sgd", "adam", "adamw"))
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--momentum", type=float, default=momentum, help="SGD momentum")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--schedule", default="none", choices=("none", "cosine"),
                        help="learning-rate schedule over the epochs: constant, or cosine decay "
                             "to 0 (default: none)")
    parser.add_argument("--max-norm", type=float, default=None,
                        help="max-norm constraint on each unit's incoming weights (the dropout "
                             "paper used 3 to 4); off by default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="directory for metrics, checkpoint and plot (default: runs/<name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in --out")
    parser.add_argument("--log-every", type=int, default=0,
                        help="also print the training loss every N batches (0: off)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dtype", default="float32", choices=dtypes,
                        help="parameter and activation dtype; float16 and bfloat16 train with "
                             "mixed precision (float32 master weights, dynamic loss scaling)")
    return parser


def check_args(args):
    """Reject bad flag values with a message that says how to fix them."""
    for name in ("epochs", "batch_size"):
        if getattr(args, name) <= 0:
            sys.exit(f"error: --{name.replace('_', '-')} must be positive, "
                     f"got {getattr(args, name)}")
    if not args.lr > 0:
        sys.exit(f"error: --lr must be positive, got {args.lr}")
    try:
        args.device = minigrad.backend.check_device(args.device)
    except (RuntimeError, ValueError) as exc:
        sys.exit(f"error: --device {args.device}: {exc}")
    if args.dtype == "bfloat16":
        try:
            mixed_precision.bfloat16()
        except ImportError as exc:
            sys.exit(f"error: --dtype bfloat16: {exc}")


def model_dtype(args):
    """The dtype to build the model in: float32 for mixed precision (MixedPrecision casts it)."""
    return np.dtype(np.float32 if args.dtype in LOW_PRECISION else args.dtype)


def input_dtype(args):
    """The batches' dtype; bfloat16 runs get float32 batches (NumPy has no bfloat16 math)."""
    return np.dtype(np.float32 if args.dtype == "bfloat16" else args.dtype)


def make_mixed_precision(args, model, optimizer):
    """MixedPrecision for --dtype float16/bfloat16 (call after make_optimizer), else None."""
    if args.dtype not in LOW_PRECISION:
        return None
    return mixed_precision.MixedPrecision(model, optimizer, dtype=args.dtype)


def make_loaders(args, generator, flatten):
    """Train (shuffled) and test loaders for ``args.dataset`` on ``args.device``."""
    try:
        train = load_dataset(args.dataset, train=True, data_dir=args.data_dir)
        test = load_dataset(args.dataset, train=False, data_dir=args.data_dir)
    except minigrad.data.DataError as exc:
        sys.exit(f"error: {exc}")
    norm = NORMALIZATION[args.dataset.replace("-t10k-split", "")]
    common = dict(batch_size=args.batch_size, device=args.device, normalize=norm,
                  flatten=flatten, dtype=input_dtype(args))
    return (DataLoader(*train, shuffle=True, generator=generator, **common),
            DataLoader(*test, shuffle=False, **common))


def make_schedule(args, optimizer):
    """The --schedule: None (constant lr) or cosine decay to 0 over --epochs, stepped per epoch."""
    if args.schedule == "cosine":
        return optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    return None


def make_optimizer(args, model):
    params = model.parameters()
    if args.optimizer == "sgd":
        return optim.SGD(params, lr=args.lr, momentum=args.momentum,
                         weight_decay=args.weight_decay)
    if args.optimizer == "adam":
        return optim.Adam(params, lr=args.lr, weight_decay=args.weight_decay)
    return optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total, desc, enabled=True, width=24):
        self.total, self.desc, self.width = total, desc, width
        self.enabled = enabled and sys.stderr.isatty()
        self.count, self.start, self.last_draw = 0, time.perf_counter(), 0.0

    def update(self, n, metrics_fn):
        """Advance by n steps; ``metrics_fn()`` gives the text to show (called when drawn)."""
        self.count += n
        now = time.perf_counter()
        if self.enabled and (now - self.last_draw > 0.1 or self.count == self.total):
            self.last_draw = now
            done = int(self.width * self.count / max(self.total, 1))
            bar = "#" * done + "-" * (self.width - done)
            sys.stderr.write(f"\r{self.desc} [{bar}] {self.count}/{self.total} {metrics_fn()}")
            sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\r" + " " * 110 + "\r")
            sys.stderr.flush()


def loss_input(logits):
    """Logits as the loss takes them: float16 ones cast to float32 (a differentiable cast).

    A float16 loss has about 3 significant digits, and a batch's sum of losses overflows
    float16 at 65504; the cast keeps the backward through the model in float16.
    """
    return logits.astype(np.float32) if logits.dtype.itemsize < 4 else logits


def evaluate(model, loader):
    """Mean loss and accuracy over ``loader`` in eval mode (dropout off); restores the mode."""
    was_training = model.training
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    with minigrad.no_grad():
        for x, y in loader:
            logits = model(x)
            loss_sum += float(F.cross_entropy(loss_input(logits), y, reduction="sum").data)
            correct += int((logits.data.argmax(axis=-1) == y.data).sum())
            count += len(y.data)
    model.train(was_training)
    return loss_sum / count, correct / count


class Interrupt:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        signals = (signal.SIGINT, signal.SIGTERM)
        self.previous = {s: signal.signal(s, self._handle) for s in signals}
        return self

    def _handle(self, signum, frame):
        if self.requested:    # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


class Run:
    """One training run's files in ``out``: checkpoint.npz, metrics.csv/json, curves.png."""

    def __init__(self, out):
        os.makedirs(out, exist_ok=True)
        self.out = out
        self.checkpoint = os.path.join(out, "checkpoint.npz")

    def _write_atomic(self, name, text):
        path = os.path.join(self.out, name)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def write_metrics(self, history, config):
        self._write_atomic("metrics.json", json.dumps(
            {"config": config, "epochs": history}, indent=2) + "\n")
        if history:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
            self._write_atomic("metrics.csv", buf.getvalue())

    def plot(self, history, title):
        """Train vs test loss and accuracy; skipped (with a note) without matplotlib."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        epochs = [h["epoch"] for h in history]
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        for split in ("train", "test"):
            ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], label=split)
            ax_acc.plot(epochs, [100 * h[f"{split}_acc"] for h in history], label=split)
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.suptitle(title)
        fig.tight_layout()
        path = os.path.join(self.out, "curves.png")
        fig.savefig(path + ".tmp.png", dpi=100)
        os.replace(path + ".tmp.png", path)
        plt.close(fig)
        return path


def fit(model, optimizer, generator, train_loader, test_loader, args, *, name,
        constraint=None, schedule=None, config=None, loss_fn=None, amp=None):
    """Train ``model`` for ``args.epochs`` epochs; returns the per-epoch history.

    With ``amp`` (``make_mixed_precision``) a step is ``amp.step(loss)``; build ``constraint``
    on ``amp.master_params`` then: it acts on the float32 masters.
    """
    loss_fn = loss_fn or F.cross_entropy
    run = Run(args.out or os.path.join("runs", name))
    config = dict(config or vars(args))
    history, epoch, sums = [], 0, None
    if args.resume:
        if not os.path.exists(run.checkpoint):
            sys.exit(f"error: --resume: no checkpoint at {run.checkpoint}; run without "
                     "--resume to start, or point --out at the run to continue")
        state = load_checkpoint(run.checkpoint)
        saved_dtype = state.get("config", {}).get("dtype", args.dtype)
        if saved_dtype != args.dtype:
            sys.exit(f"error: --resume: the checkpoint was trained with --dtype {saved_dtype}; "
                     f"resume it with --dtype {saved_dtype}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        train_loader.load_state_dict(state["loader"])
        if schedule is not None:
            schedule.load_state_dict(state["schedule"])
        if amp is not None:
            amp.load_state_dict(state["amp"])
        history, epoch, sums = state["history"], state["epoch"], state.get("sums")
        print(f"resuming {name} at epoch {epoch + 1}, batch {train_loader.position} "
              f"of {len(train_loader)}", flush=True)

    def save(epoch, sums):
        model_state = mixed_precision.widen_bfloat16(model.state_dict())   # .npz: no bfloat16
        save_checkpoint(run.checkpoint, model=model_state,
                        optimizer=optimizer.state_dict(), generator=generator.get_state(),
                        loader=train_loader.state_dict(), history=history, epoch=epoch,
                        sums=sums, config=config,
                        schedule=None if schedule is None else schedule.state_dict(),
                        amp=None if amp is None else amp.state_dict())

    print(f"{name}: {model.num_parameters():,} parameters on {args.device}, "
          f"{len(train_loader)} batches/epoch, writing to {run.out}", flush=True)
    model.train()
    with Interrupt() as interrupt:
        while epoch < args.epochs:
            sums = sums or {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0}
            bar = ProgressBar(len(train_loader), f"epoch {epoch + 1}/{args.epochs}",
                              enabled=not args.no_progress)
            bar.count = train_loader.position
            start = time.perf_counter()
            for x, y in train_loader:
                logits = model(x)
                loss = loss_fn(loss_input(logits), y)
                if amp is None:
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    if constraint is not None:
                        constraint.apply()
                else:
                    amp.step(loss, after_step=None if constraint is None else constraint.apply)
                loss_value = float(loss.data)
                if not math.isfinite(loss_value):
                    bar.close()
                    sys.exit(f"error: the training loss became {loss_value} at epoch "
                             f"{epoch + 1}, batch {train_loader.position}; stopping. The last "
                             f"good checkpoint is {run.checkpoint} (end of epoch {epoch}). "
                             "Lower --lr, or add --max-norm.")
                n = len(y.data)
                sums["loss"] += loss_value * n
                sums["correct"] += int((logits.data.argmax(axis=-1) == y.data).sum())
                sums["count"] += n
                batch = train_loader.position or len(train_loader)   # 0 after the last batch
                if args.log_every and batch % args.log_every == 0:
                    print(f"  epoch {epoch + 1} batch {batch}: "
                          f"loss {loss_value:.4f}", flush=True)
                elapsed = sums["seconds"] + time.perf_counter() - start
                bar.update(1, lambda: (f"loss {sums['loss'] / sums['count']:.4f} "
                                       f"acc {100 * sums['correct'] / sums['count']:.2f}% "
                                       f"{sums['count'] / max(elapsed, 1e-9):,.0f} samples/s"))
                if interrupt.requested and train_loader.position < len(train_loader):
                    bar.close()
                    sums["seconds"] = elapsed
                    save(epoch, sums)
                    print(f"interrupted at epoch {epoch + 1}, batch {train_loader.position}: "
                          f"saved {run.checkpoint}; continue with the same command plus "
                          "--resume", flush=True)
                    sys.exit(130)
            bar.close()
            seconds = sums["seconds"] + time.perf_counter() - start
            test_loss, test_acc = evaluate(model, test_loader)
            epoch += 1
            record = {"epoch": epoch, "train_loss": sums["loss"] / sums["count"],
                      "train_acc": sums["correct"] / sums["count"], "test_loss": test_loss,
                      "test_acc": test_acc, "seconds": seconds,
                      "samples_per_s": sums["count"] / seconds, "lr": optimizer.lr}
            if amp is not None:
                record.update(loss_scale=amp.scale, skipped_steps=amp.skipped_steps)
            history.append(record)
            print(f"epoch {epoch:3d}  train loss {record['train_loss']:.4f} "
                  f"acc {100 * record['train_acc']:.2f}%  |  test loss {test_loss:.4f} "
                  f"acc {100 * test_acc:.2f}%  |  {seconds:.1f}s "
                  f"({record['samples_per_s']:,.0f} samples/s)"
                  + ("" if amp is None else f"  |  loss scale {amp.scale:g}, "
                                            f"{amp.skipped_steps} steps skipped"), flush=True)
            if schedule is not None:
                schedule.step()
            sums = None
            save(epoch, sums)
            run.write_metrics(history, config)
            if interrupt.requested:
                print(f"interrupted after epoch {epoch}: continue with --resume", flush=True)
                sys.exit(130)
    plot = run.plot(history, name) if history else None
    print(f"done: metrics in {run.out}/metrics.csv"
          + (f", curves in {plot}" if plot else " (pip install matplotlib for curves.png)"),
          flush=True)
    return history


def weights_digest(model):
    """A short hash of the model's weights, to compare runs bit for bit."""
    import hashlib
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(as_numpy(value)).tobytes())
    return h.hexdigest()[:16]


def parse(parser, argv=None):
    args = parser.parse_args(argv)
    check_args(args)
    return args


__all__ = ["Interrupt", "ProgressBar", "Run", "add_training_args", "evaluate", "fit",
           "input_dtype", "loss_input", "make_loaders", "make_mixed_precision",
           "make_optimizer", "make_schedule", "model_dtype", "parse", "weights_digest"]
