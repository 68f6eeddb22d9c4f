"""Seconds per training epoch of an MNIST-size MLP with dropout: minigrad vs a hand-written
NumPy loop (no autograd at all) vs PyTorch CPU, side by side in one process.

    python benchmarks/bench_mlp.py                 # both configs, 3 interleaved rounds
    python benchmarks/bench_mlp.py --config default --rounds 5

Configs (batch 64, SGD, float32, inverted dropout, 60,000 training images):
    default  784-500-10, dropout 0.5 after the hidden layer (the classic MNIST example)
    big      784-1024-1024-10, dropout 0.2 on the input and 0.5 after each hidden layer

Every variant runs the same model, batch size and data order, one epoch per round, in the
order A B C A B C ... so that machine-speed drift hits all of them alike; the table gives
medians and ratios. Uses Fashion-MNIST when it is found (MINIGRAD_DATA_DIR or the cache),
random images of the same size otherwise: the time per epoch does not depend on the pixels.
"""

import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import minigrad  # noqa: E402
from minigrad import functional as F  # noqa: E402
from minigrad.data import NORMALIZATION, DataLoader, load_dataset  # noqa: E402
from mnist_mlp import build_mlp  # noqa: E402
from timing import interleave, markdown_table, median  # noqa: E402

CONFIGS = {
    "default": dict(hidden=[500], p=0.5, input_p=0.0),
    "big": dict(hidden=[1024, 1024], p=0.5, input_p=0.2),
}
BATCH, LR = 64, 0.01


def load_images():
    try:
        x, y = load_dataset("fashion-mnist", train=True, download=False)
        return x, y, "Fashion-MNIST"
    except minigrad.data.DataError:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8),
                rng.integers(0, 10, 60000), "random images")


def minigrad_epoch(config, images, labels):
    """The training step of examples/mnist_mlp.py: forward, loss, backward, SGD step."""
    generator = minigrad.Generator(0)
    model = build_mlp(config["hidden"], config["p"], config["input_p"], "inverted", generator)
    optimizer = minigrad.optim.SGD(model.parameters(), lr=LR)
    loader = DataLoader(images, labels, batch_size=BATCH, generator=generator,
                        normalize=NORMALIZATION["fashion-mnist"], flatten=True)

    def epoch():
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


def numpy_epoch(config, images, labels):
    """The same network and update, forward and backward written out by hand in NumPy."""
    rng = np.random.default_rng(0)
    sizes = [784, *config["hidden"], 10]
    weights = [rng.uniform(-1, 1, (o, i)).astype(np.float32) / np.float32(np.sqrt(i))
               for i, o in zip(sizes[:-1], sizes[1:])]
    biases = [np.zeros(o, np.float32) for o in sizes[1:]]
    mean, std = NORMALIZATION["fashion-mnist"]
    data = ((images.reshape(len(images), -1).astype(np.float32) / 255 - mean) / std)
    data = data.astype(np.float32)
    p_in, p_hid = config["input_p"], config["p"]

    def drop(h, p):
        if p == 0:
            return h, None
        mask = rng.random(h.shape, dtype=np.float32) >= p
        return h * mask * np.float32(1 / (1 - p)), mask

    def epoch():
        order = rng.permutation(len(data))
        for start in range(0, len(data), BATCH):
            idx = order[start:start + BATCH]
            x, y = data[idx], labels[idx]
            x, in_mask = drop(x, p_in)
            acts, masks = [x], []
            h = x
            for k, (w, b) in enumerate(zip(weights, biases)):
                h = h @ w.T + b
                if k < len(weights) - 1:
                    h = np.maximum(h, 0)
                    h, m = drop(h, p_hid)
                    masks.append(m)
                    acts.append(h)
            z = h - h.max(axis=1, keepdims=True)
            prob = np.exp(z)
            prob /= prob.sum(axis=1, keepdims=True)
            prob[np.arange(len(y)), y] -= 1
            g = prob / np.float32(len(y))
            for k in reversed(range(len(weights))):
                grad_w, grad_b = g.T @ acts[k], g.sum(axis=0)
                if k > 0:
                    g = g @ weights[k]
                    g = g * masks[k - 1] * np.float32(1 / (1 - p_hid)) * (acts[k] > 0)
                weights[k] -= LR * grad_w
                biases[k] -= LR * grad_b
    return epoch


def torch_epoch(config, images, labels):
    import torch
    torch.manual_seed(0)
    sizes = [784, *config["hidden"], 10]
    modules = [torch.nn.Dropout(config["input_p"])] if config["input_p"] else []
    for i, o in zip(sizes[:-2], sizes[1:-1]):
        modules += [torch.nn.Linear(i, o), torch.nn.ReLU(), torch.nn.Dropout(config["p"])]
    model = torch.nn.Sequential(*modules, torch.nn.Linear(sizes[-2], 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    mean, std = NORMALIZATION["fashion-mnist"]
    data = torch.from_numpy(((images.reshape(len(images), -1) / 255 - mean) / std)
                            .astype(np.float32))
    targets = torch.from_numpy(labels.astype(np.int64))
    generator = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(data), generator=generator)
        for start in range(0, len(data), BATCH):
            idx = order[start:start + BATCH]
            loss = torch.nn.functional.cross_entropy(model(data[idx]), targets[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return epoch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=[*CONFIGS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    images, labels, source = load_images()
    labels = labels.astype(np.int64)
    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    rows = []
    for name in (CONFIGS if args.config == "all" else [args.config]):
        config = CONFIGS[name]
        variants = {"numpy (hand-written)": numpy_epoch(config, images, labels),
                    "minigrad": minigrad_epoch(config, images, labels)}
        if torch_version:
            variants[f"PyTorch {torch_version}"] = torch_epoch(config, images, labels)
        times = interleave(variants, rounds=args.rounds)
        ref = median(times["numpy (hand-written)"])
        mg = median(times["minigrad"])
        for variant, ts in times.items():
            rows.append([name, variant, f"{median(ts):.2f}", f"{median(ts) / ref:.2f}",
                         f"{median(ts) / mg:.2f}"])
    print(f"\nData: {source}, batch {BATCH}, {args.rounds} interleaved rounds, median s/epoch\n")
    print(markdown_table(["config", "variant", "s/epoch", "x numpy loop", "x minigrad"], rows))
    return rows


if __name__ == "__main__":
    main()
