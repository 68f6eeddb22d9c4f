"""babyGPT: train a character-level GPT with dropout at every classic position, then sample.

The model (examples/gpt_model.py) drops at five positions: the embedding sum, the attention
weights, the attention output after its projection, the end of each feed-forward block, and
the classification head (before its last projection). The default corpus is this project's
own text: its Markdown docs and the Python sources of its packages, nothing downloaded.

    python examples/babygpt.py                              # dropout 0.2, 2,000 steps
    python examples/babygpt.py --dropout 0                  # the same without dropout
    python examples/babygpt.py --corpus docs                # a small corpus: it overfits
    python examples/babygpt.py --text my.txt --device cuda  # any text file, on a GPU
    python examples/babygpt.py --scaling classic            # scale by 1-p at eval instead

After training it prints the train/validation losses (eval mode, dropout off), the
accuracy of a small sequence classifier fine-tuned on top (is this window of text
reversed?), samples at --temperature with --top-k and with --top-p, and shows the two kinds
of randomness: dropout masks in training, sampling at inference. Interrupt it (Ctrl-C) and
add --resume to the same command to continue; the weights are bit-identical to an
uninterrupted run.
"""

import argparse
import json
import math
import os
import pathlib
import sys
import time

import numpy as np

import layers
import minigrad
from minigrad import functional as F
from minigrad import optim
from minigrad.backend import as_numpy
from minigrad.checkpoint import load_checkpoint, save_checkpoint
from minigrad.random import Generator
from gpt_model import (BabyGPT, Vocabulary, check_sampling, generate, get_batch,
                       reversed_windows, split)
from training import ProgressBar, Run, Interrupt

CORPORA = ("all", "code", "docs")


def corpus_files(corpus):
    """The files of the built-in corpus: docs (README.md, docs/*.md) and/or package sources.

    The sources are found through the installed packages, so they exist wherever the project
    is installed; the docs are looked for next to them (a source checkout).
    """
    packages = [pathlib.Path(m.__file__).parent for m in (minigrad, layers)]
    root = packages[0].parent
    docs = [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))]
            if p.is_file()]
    code = [p for pkg in packages for p in sorted(pkg.rglob("*.py"))]
    if corpus == "docs" and not docs:
        sys.exit(f"error: --corpus docs: no README.md or docs/*.md found in {root}; use "
                 "--corpus code, or --text FILE")
    return {"all": docs + code, "code": code, "docs": docs}[corpus]


def load_text(args):
    if args.text:
        try:
            text = pathlib.Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            sys.exit(f"error: --text {args.text}: {exc}")
    else:
        text = "\n".join(p.read_text(encoding="utf-8") for p in corpus_files(args.corpus))
    text = text[:args.max_chars] if args.max_chars else text
    if len(text) < 10 * (args.block_size + 1):
        sys.exit(f"error: the text has {len(text)} characters; it needs at least "
                 f"{10 * (args.block_size + 1)} for a 90/10 split into windows of "
                 f"--block-size {args.block_size} (give a longer --text or a smaller "
                 "--block-size)")
    return text


def estimate_loss(model, splits, block_size, batch_size, eval_iters=10, seed=0):
    """Mean next-character loss per split over ``eval_iters`` batches, in eval mode.

    Dropout is off while measuring, so the number describes the model, not one random
    thinned copy of it; the batches come from ``Generator(seed)``, the same windows at every
    call, so successive estimates differ only because the model changed. The model's mode is
    restored afterwards (train mode during training).
    """
    was_training = model.training
    model.eval()
    device = _device(model)
    losses = {}
    with minigrad.no_grad():
        for name, data in splits.items():
            generator = Generator(seed)
            total = 0.0
            for _ in range(eval_iters):
                x, y = get_batch(data, block_size, batch_size, generator, device)
                total += float(F.cross_entropy(model(x), y).data)
            losses[name] = total / eval_iters
    model.train(was_training)
    return losses


def _device(model):
    return minigrad.backend.device_of(model.parameters()[0].data)


def clip_grad_norm(params, max_norm):
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``."""
    grads = [p.grad for p in params if p.grad is not None]
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * scale    # a new array: .grad may be shared, never edit it
    return norm


def train_step(model, optimizer, x, y, grad_clip=None):
    """One step of next-character prediction; returns the loss (a Python float)."""
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    if grad_clip:
        clip_grad_norm(optimizer.params, grad_clip)
    optimizer.step()
    return float(loss.data)


def train_classifier(model, splits, args, generator):
    """Fine-tune the model with its classification head to tell reversed text from text.

    The whole network trains (as when fine-tuning RoBERTa), with every dropout on, including
    the head's. Returns the validation accuracy in eval mode over a fixed set of windows.
    """
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    device = _device(model)
    model.train()
    for _ in range(args.classify_steps):
        x, y = reversed_windows(splits["train"], args.block_size, args.batch_size, generator,
                                device)
        loss = F.cross_entropy(model.classify(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    correct = count = 0
    val_generator = Generator(args.seed)
    with minigrad.no_grad():
        for _ in range(8):
            x, y = reversed_windows(splits["val"], args.block_size, args.batch_size,
                                    val_generator, device)
            correct += int((model.classify(x).data.argmax(axis=-1) == y.data).sum())
            count += len(y.data)
    model.train()
    return correct / count


def make_schedule(optimizer, args):
    warmup = max(1, min(args.warmup, args.steps - 1))
    return optim.LinearWarmup(optimizer, warmup, start_factor=0.1, after=optim.CosineAnnealingLR(
        optimizer, T_max=max(1, args.steps - warmup), eta_min=args.lr / 10))


def train_lm(model, optimizer, schedule, splits, args, generator, run, vocabulary):
    """Train for args.steps steps, evaluating every args.eval_interval; returns the history.

    The checkpoint also keeps ``vocabulary`` (the characters), so that --sample-only can
    rebuild the model without the text.
    """
    history, step = [], 0
    if args.resume:
        if not os.path.exists(run.checkpoint):
            sys.exit(f"error: --resume: no checkpoint at {run.checkpoint}; run without "
                     "--resume to start, or point --out at the run to continue")
        state = load_checkpoint(run.checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        history, step = state["history"], state["step"]
        print(f"resuming at step {step} of {args.steps}", flush=True)

    def save():
        save_checkpoint(run.checkpoint, model=model.state_dict(),
                        optimizer=optimizer.state_dict(), schedule=schedule.state_dict(),
                        generator=generator.get_state(), history=history, step=step,
                        config=vars(args), vocabulary=vocabulary)

    def evaluate(seconds, tokens):
        losses = estimate_loss(model, splits, args.block_size, args.batch_size,
                               args.eval_iters, args.seed)
        record = {"step": step, "train_loss": losses["train"], "val_loss": losses["val"],
                  "gap": losses["val"] - losses["train"], "seconds": seconds,
                  "tokens_per_s": tokens / max(seconds, 1e-9), "lr": optimizer.lr}
        history.append(record)
        print(f"step {step:5d}  train loss {record['train_loss']:.4f}  val loss "
              f"{record['val_loss']:.4f}  gap {record['gap']:+.4f}  |  "
              f"{record['tokens_per_s']:,.0f} tokens/s", flush=True)
        run.write_metrics(history, vars(args))

    tokens_per_step = args.batch_size * args.block_size
    model.train()
    if not history:
        evaluate(0.0, 0)
    bar = ProgressBar(args.steps, "train", enabled=not args.no_progress)
    bar.count = step
    start, done, loss = time.perf_counter(), 0, float("nan")
    with Interrupt() as interrupt:
        while step < args.steps:
            x, y = get_batch(splits["train"], args.block_size, args.batch_size, generator,
                             args.device)
            loss = train_step(model, optimizer, x, y, args.grad_clip)
            if not math.isfinite(loss):
                bar.close()
                sys.exit(f"error: the training loss became {loss} at step {step + 1}; "
                         "stopping. Lower --lr or --grad-clip.")
            schedule.step()
            step, done = step + 1, done + 1
            seconds = time.perf_counter() - start
            bar.update(1, lambda: f"loss {loss:.4f} {done * tokens_per_step / seconds:,.0f} "
                                  "tokens/s")
            if step % args.eval_interval == 0 or step == args.steps:
                bar.close()
                evaluate(seconds, done * tokens_per_step)
                save()
            if interrupt.requested and step < args.steps:
                bar.close()
                save()
                print(f"interrupted at step {step}: saved {run.checkpoint}; continue with the "
                      "same command plus --resume", flush=True)
                sys.exit(130)
    bar.close()
    return history


def show_dropout_randomness(model, splits, args):
    """The same batch through the model three times: train mode differs, eval mode does not."""
    x, y = get_batch(splits["val"], args.block_size, args.batch_size, Generator(args.seed),
                     args.device)
    was_training = model.training
    with minigrad.no_grad():
        model.train()
        train_losses = [float(F.cross_entropy(model(x), y).data) for _ in range(3)]
        model.eval()
        eval_losses = [float(F.cross_entropy(model(x), y).data) for _ in range(3)]
    model.train(was_training)
    return train_losses, eval_losses


def print_samples(model, vocab, args):
    """Print a sample at --temperature with --top-k and one with --top-p; returns them."""
    try:
        ids = vocab.encode(args.prompt or vocab.chars[0])[None, :]
    except ValueError as exc:
        sys.exit(f"error: --prompt: {exc}")
    samples = {}
    for knob, value in (("top_k", args.top_k or None), ("top_p", args.top_p)):
        if value is not None:
            out = generate(model, ids, args.sample_tokens, args.temperature,
                           generator=Generator(args.sample_seed), **{knob: value})
            samples[knob] = vocab.decode(as_numpy(out)[0])
            print(f"\ninference-time randomness (sampling): temperature {args.temperature}, "
                  f"{knob.replace('_', '-')} {value}, seed {args.sample_seed}:\n"
                  f"{samples[knob]}", flush=True)
    return samples


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--text", default=None, help="train on this UTF-8 text file instead of the corpus")
    add("--corpus", default="all", choices=CORPORA,
        help="built-in corpus: the project's docs, its Python sources, or both (default)")
    add("--max-chars", type=int, default=0, help="use only the first N characters (0: all)")
    add("--block-size", type=int, default=64, help="context length T")
    add("--n-layer", type=int, default=3)
    add("--n-head", type=int, default=4)
    add("--n-embd", type=int, default=64)
    add("--dropout", type=float, default=0.2,
        help="probability of ZEROING at all five dropout positions (default 0.2)")
    add("--scaling", default="inverted", choices=("inverted", "classic"),
        help="inverted: scale by 1/(1-p) in training; classic: by 1-p at evaluation")
    add("--steps", type=int, default=2000, help="training steps")
    add("--batch-size", type=int, default=32)
    add("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    add("--weight-decay", type=float, default=0.1)
    add("--warmup", type=int, default=100, help="linear warm-up steps, then cosine decay")
    add("--grad-clip", type=float, default=1.0, help="global gradient-norm limit (0: off)")
    add("--eval-interval", type=int, default=200)
    add("--eval-iters", type=int, default=20, help="batches per split in each estimate")
    add("--classify-steps", type=int, default=200,
        help="fine-tuning steps of the reversed-text classifier (0: skip)")
    add("--sample-tokens", type=int, default=300)
    add("--temperature", type=float, default=0.8)
    add("--top-k", type=int, default=10)
    add("--top-p", type=float, default=0.9)
    add("--prompt", default="", help="text to continue (default: the first character)")
    add("--sample-seed", type=int, default=1, help="seed of the sampling generator")
    add("--sample-only", action="store_true",
        help="no training: sample from the model saved in --out")
    add("--device", default="cpu", help="cpu or cuda (default: cpu)")
    add("--dtype", default="float32", choices=("float32", "float64"))
    add("--seed", type=int, default=0)
    add("--out", default=None, help="directory for metrics and checkpoint "
                                    "(default: runs/babygpt-<settings>)")
    add("--resume", action="store_true", help="continue from the checkpoint in --out")
    add("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse(argv=None):
    args = make_parser().parse_args(argv)
    for name in ("block_size", "n_layer", "n_head", "n_embd", "steps", "batch_size",
                 "eval_interval", "eval_iters"):
        if getattr(args, name) <= 0:
            sys.exit(f"error: --{name.replace('_', '-')} must be positive, got "
                     f"{getattr(args, name)}")
    if not 0 <= args.dropout < 1:
        sys.exit(f"error: --dropout is a probability of dropping and must lie in [0, 1), got "
                 f"{args.dropout}")
    if not args.lr > 0:
        sys.exit(f"error: --lr must be positive, got {args.lr}")
    try:
        check_sampling(args.temperature, args.top_k or None, args.top_p)
        args.device = minigrad.backend.check_device(args.device)
    except (RuntimeError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    return args


def run_name(args):
    source = pathlib.Path(args.text).stem if args.text else args.corpus
    return f"babygpt-{source}-p{args.dropout}-{args.scaling}"


def sample_only(args):
    """--sample-only: rebuild the model saved in the checkpoint of --out and sample from it."""
    path = os.path.join(args.out or os.path.join("runs", run_name(args)), "checkpoint.npz")
    if not os.path.exists(path):
        sys.exit(f"error: --sample-only: no checkpoint at {path}; train first (the same "
                 "command without --sample-only), or point --out at a trained run")
    state = load_checkpoint(path)
    config, vocab = state["config"], Vocabulary(state["vocabulary"])
    model = BabyGPT(len(vocab), config["block_size"], config["n_layer"], config["n_head"],
                    config["n_embd"], config["dropout"], config["scaling"],
                    device=args.device, dtype=np.dtype(config["dtype"]))
    model.load_state_dict(state["model"])
    return model, vocab, {"samples": print_samples(model, vocab, args)}


def train(argv=None):
    """Parse ``argv``, train, sample, fine-tune the classifier; returns (model, vocab, summary).

    With --sample-only, load the trained model from --out and only sample.
    """
    args = parse(argv)
    if args.sample_only:
        return sample_only(args)
    text = load_text(args)
    vocab = Vocabulary(text)
    splits = split(vocab.encode(text))
    generator = Generator(args.seed)
    model = BabyGPT(len(vocab), args.block_size, args.n_layer, args.n_head, args.n_embd,
                    args.dropout, args.scaling, n_classes=2, device=args.device,
                    dtype=np.dtype(args.dtype), generator=generator)
    name = run_name(args)
    run = Run(args.out or os.path.join("runs", name))
    print(f"{name}: {len(text):,} characters, vocabulary {len(vocab)}, "
          f"{model.num_parameters():,} parameters on {args.device}, writing to {run.out}",
          flush=True)
    optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = make_schedule(optimizer, args)
    history = train_lm(model, optimizer, schedule, splits, args, generator, run,
                       "".join(vocab.chars))
    last = history[-1]
    summary = {"characters": len(text), "vocabulary": len(vocab),
               "parameters": model.num_parameters(), "final_train_loss": last["train_loss"],
               "final_val_loss": last["val_loss"], "gap": last["gap"],
               "best_val_loss": min(h["val_loss"] for h in history)}
    print(f"final: train loss {last['train_loss']:.4f}, val loss {last['val_loss']:.4f}, gap "
          f"{last['gap']:+.4f}; best val loss {summary['best_val_loss']:.4f}", flush=True)

    train_losses, eval_losses = show_dropout_randomness(model, splits, args)
    print("training-time randomness (dropout): one batch, three forward passes")
    print("  train mode: " + ", ".join(f"{v:.4f}" for v in train_losses))
    print("  eval mode:  " + ", ".join(f"{v:.4f}" for v in eval_losses))
    summary["samples"] = print_samples(model, vocab, args)
    if args.classify_steps:
        accuracy = train_classifier(model, splits, args, generator)
        summary["reversed_text_accuracy"] = accuracy
        print(f"\nclassifier (is the window reversed?), {args.classify_steps} fine-tuning "
              f"steps: validation accuracy {100 * accuracy:.1f}% (chance 50%)", flush=True)
    with open(os.path.join(run.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return model, vocab, summary


def main(argv=None):
    return train(argv)[2]


if __name__ == "__main__":
    main()
