"""The dropout experiments: what dropout does to an MLP, measured.

    python examples/dropout_experiments.py overfit   # with vs without dropout: the train/test gap
    python examples/dropout_experiments.py sweep     # test accuracy as a function of p
    python examples/dropout_experiments.py scaling   # classic vs inverted, same seeds
    python examples/dropout_experiments.py mc        # MC-dropout uncertainty: wrong vs right
    python examples/dropout_experiments.py all

Each experiment trains the MLP of examples/mnist_mlp.py (any of its flags can follow, e.g.
--dataset fashion-mnist --hidden 1024 1024 --input-p 0.2 --epochs 40) and writes, under --out
(default runs/experiments), a markdown table (<experiment>.md) and a plot (<experiment>.png,
when matplotlib is installed). Runs are cached: a finished run in its folder is read back, not
trained again, so the tables can be regenerated cheaply.
"""

import argparse
import json
import os
import sys

import numpy as np
import scipy.stats

import minigrad
from layers import mc_dropout_predict
from minigrad.checkpoint import load_checkpoint
from mnist_mlp import build_mlp, make_parser, train
from training import evaluate, make_loaders, parse

EXPERIMENTS = ("overfit", "sweep", "scaling", "mc")


def _run(out, name, flags, keep_model=False):
    """Train with ``flags`` into out/name (or read the finished run back); return history."""
    folder = os.path.join(out, name)
    metrics = os.path.join(folder, "metrics.json")
    argv = [*flags, "--out", folder, "--no-progress"]
    if os.path.exists(metrics) and not keep_model:
        with open(metrics) as f:
            saved = json.load(f)
        epochs = int(_flag(flags, "--epochs", 20))
        if len(saved["epochs"]) >= epochs:
            print(f"[{name}] finished earlier: reading {metrics}", flush=True)
            return saved["epochs"], None
    print(f"[{name}] python examples/mnist_mlp.py {' '.join(flags)}", flush=True)
    model, test_loader, history = train(argv)
    return history, (model, test_loader)


def _eval_train_acc(out, name, flags):
    """Accuracy on the training set in eval mode (dropout off), from the run's checkpoint.

    The train accuracy a training loop prints is measured with dropout on, which understates
    what the network has learnt; the overfitting gap is eval-mode train vs test accuracy.
    """
    folder = os.path.join(out, name)
    args = parse(make_parser(), [*flags, "--out", folder])
    model = build_mlp(args.hidden, args.p, args.input_p, args.scaling,
                      minigrad.Generator(args.seed), device=args.device)
    model.load_state_dict(load_checkpoint(os.path.join(folder, "checkpoint.npz"))["model"])
    train_loader, _ = make_loaders(args, minigrad.Generator(args.seed), flatten=True)
    return evaluate(model, train_loader)[1]


def _flag(flags, name, default):
    return flags[flags.index(name) + 1] if name in flags else default


def _without(flags, *names):
    """Drop ``--name value`` pairs from flags (so an experiment can set them itself)."""
    out, skip = [], False
    for f in flags:
        if skip:
            skip = False
        elif f in names:
            skip = True
        else:
            out.append(f)
    return out


def _pct(x):
    return f"{100 * x:.2f}"


def _write(out, name, title, command, lines):
    path = os.path.join(out, f"{name}.md")
    with open(path, "w") as f:
        f.write(f"## {title}\n\nCommand: `{command}`\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    print(f"wrote {path}", flush=True)


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        return None


def overfit(out, flags, command):
    """Same network with and without dropout: curves and the final train/test gap."""
    base = _without(flags, "--p", "--input-p")
    runs = {"dropout": flags, "no dropout": [*base, "--p", "0", "--input-p", "0"]}
    names = {label: f"overfit-{label.replace(' ', '-')}" for label in runs}
    histories = {label: _run(out, names[label], f)[0] for label, f in runs.items()}
    lines = ["| model | train acc % (eval mode) | train acc % (running, dropout on) | "
             "test acc % | gap (points) | best test acc % | final test loss |",
             "|---|---|---|---|---|---|---|"]
    for label, h in histories.items():
        last = h[-1]
        train_acc = _eval_train_acc(out, names[label], runs[label])
        lines.append(f"| {label} | {_pct(train_acc)} | {_pct(last['train_acc'])} | "
                     f"{_pct(last['test_acc'])} | {100 * (train_acc - last['test_acc']):.2f} | "
                     f"{_pct(max(e['test_acc'] for e in h))} | {last['test_loss']:.4f} |")
    _write(out, "overfit", "With vs without dropout", command, lines)
    plt = _pyplot()
    if plt:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for (label, h), color in zip(histories.items(), ("C0", "C3")):
            ep = [e["epoch"] for e in h]
            for ax, key in zip(axes, ("acc", "loss")):
                scale = 100 if key == "acc" else 1
                ax.plot(ep, [scale * e[f"train_{key}"] for e in h], "--", color=color,
                        label=f"{label}, train")
                ax.plot(ep, [scale * e[f"test_{key}"] for e in h], "-", color=color,
                        label=f"{label}, test")
        axes[0].set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        axes[1].set(xlabel="epoch", ylabel="cross-entropy", title="loss")
        for ax in axes:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "overfit.png"), dpi=100)


def sweep(out, flags, command, ps=(0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)):
    """Test accuracy and train/test gap as a function of the hidden-layer dropout p."""
    base = _without(flags, "--p")
    results = [(p, _run(out, f"sweep-p{p}", [*base, "--p", str(p)])[0][-1]) for p in ps]
    train_accs = [_eval_train_acc(out, f"sweep-p{p}", [*base, "--p", str(p)]) for p in ps]
    lines = ["| p | train acc % (eval mode) | test acc % | gap (points) | test loss |",
             "|---|---|---|---|---|"]
    lines += [f"| {p} | {_pct(t)} | {_pct(r['test_acc'])} | "
              f"{100 * (t - r['test_acc']):.2f} | {r['test_loss']:.4f} |"
              for (p, r), t in zip(results, train_accs)]
    _write(out, "sweep", "Sweep of the dropout probability p", command, lines)
    plt = _pyplot()
    if plt:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ps, [100 * t for t in train_accs], "o--", label="train (eval mode)")
        ax.plot(ps, [100 * r["test_acc"] for _, r in results], "o-", label="test")
        ax.set(xlabel="p (probability of dropping a hidden unit)", ylabel="accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "sweep.png"), dpi=100)


def scaling(out, flags, command, seeds=(0, 1, 2)):
    """Classic vs inverted dropout with the same seeds: same accuracy within seed noise."""
    base = _without(flags, "--scaling", "--seed")
    acc = {s: [_run(out, f"scaling-{s}-seed{seed}",
                    [*base, "--scaling", s, "--seed", str(seed)])[0][-1]["test_acc"]
               for seed in seeds] for s in ("inverted", "classic")}
    lines = ["| scaling | " + " | ".join(f"seed {s}" for s in seeds)
             + " | mean % | std (points) |", "|---" * (len(seeds) + 3) + "|"]
    for s, values in acc.items():
        lines.append(f"| {s} | " + " | ".join(_pct(v) for v in values)
                     + f" | {_pct(np.mean(values))} | {100 * np.std(values, ddof=1):.2f} |")
    diff = np.array(acc["inverted"]) - np.array(acc["classic"])
    t = scipy.stats.ttest_rel(acc["inverted"], acc["classic"]) if len(seeds) > 1 else None
    lines.append("")
    lines.append(f"Paired difference (inverted - classic): mean {100 * diff.mean():.2f} points"
                 + (f", paired t-test p = {t.pvalue:.2f}" if t is not None else ""))
    _write(out, "scaling", "Classic vs inverted dropout", command, lines)


def mc(out, flags, command, passes=50):
    """MC dropout at test time: predictive entropy of misclassified vs correct examples."""
    history, trained = _run(out, "mc-model", flags, keep_model=True)
    model, test_loader = trained
    ents, right = [], []
    for x, y in test_loader:
        pred = mc_dropout_predict(model, x, T=passes)
        ents.append(minigrad.backend.as_numpy(pred.entropy))
        right.append(minigrad.backend.as_numpy(pred.mean).argmax(axis=-1)
                     == minigrad.backend.as_numpy(y.data))
    ents, right = np.concatenate(ents), np.concatenate(right)
    auc = scipy.stats.mannwhitneyu(ents[~right], ents[right]).statistic / (
        (~right).sum() * right.sum())
    lines = ["| test examples | count | mean entropy (nats) | median entropy |",
             "|---|---|---|---|",
             f"| correct | {right.sum()} | {ents[right].mean():.3f} | "
             f"{np.median(ents[right]):.3f} |",
             f"| misclassified | {(~right).sum()} | {ents[~right].mean():.3f} | "
             f"{np.median(ents[~right]):.3f} |", "",
             f"MC-dropout accuracy ({passes} passes): {_pct(right.mean())}%; deterministic "
             f"(eval-mode) accuracy: {_pct(history[-1]['test_acc'])}%. Entropy separates "
             f"errors from correct predictions with AUROC {auc:.3f}."]
    _write(out, "mc", f"MC-dropout uncertainty ({passes} passes)", command, lines)
    plt = _pyplot()
    if plt:
        fig, ax = plt.subplots(figsize=(6, 4))
        bins = np.linspace(0, np.log(10), 40)
        ax.hist(ents[right], bins, alpha=0.6, density=True, label="correct")
        ax.hist(ents[~right], bins, alpha=0.6, density=True, label="misclassified")
        ax.set(xlabel="predictive entropy (nats)", ylabel="density")
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "mc.png"), dpi=100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=(*EXPERIMENTS, "all"))
    parser.add_argument("--out", default=os.path.join("runs", "experiments"))
    args, flags = parser.parse_known_args(argv)
    os.makedirs(args.out, exist_ok=True)
    command = "python examples/dropout_experiments.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    todo = EXPERIMENTS if args.experiment == "all" else (args.experiment,)
    for name in todo:
        globals()[name](args.out, flags, command)


if __name__ == "__main__":
    main()
