"""Images per second of the examples/mnist_cnn.py network: minigrad vs PyTorch CPU, one run.

    python benchmarks/bench_cnn.py                              # 5 interleaved rounds
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_cnn.py       # one BLAS thread (and one
                                                                # PyTorch thread, to match)

The network is the example's default: conv 3x3 (1->16) - ReLU - maxpool 2 - spatial dropout -
conv 3x3 (16->32) - ReLU - maxpool 2 - spatial dropout - Linear(1568->128) - ReLU -
Dropout(0.5) - Linear(128->10), float32, batch 64. For each spatial dropout (none, Dropout2d
p=0.1, DropBlock p=0.1 with 3x3 blocks) it times:

    train  forward + cross-entropy + backward + SGD step (momentum 0.9), in training mode
    infer  forward only, in evaluation mode, without recording a graph

PyTorch runs the same model (torch.nn has no DropBlock, so that row is minigrad only). All
variants run in turn (A B C A B C ...) so that machine-speed drift hits them alike; the table
gives the median images/s and the ratio. NumPy's BLAS reads OPENBLAS_NUM_THREADS when it is
imported, so the thread count is set from the environment; PyTorch is given the same count
(--threads overrides it for PyTorch only). Uses Fashion-MNIST images when they are found
(MINIGRAD_DATA_DIR or the cache), random ones otherwise: the speed does not depend on pixels.
"""

import argparse
import os
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import minigrad  # noqa: E402
from minigrad import functional as F  # noqa: E402
from minigrad.data import NORMALIZATION, load_dataset  # noqa: E402
from mnist_cnn import build_cnn  # noqa: E402
from timing import interleave, markdown_table, median  # noqa: E402

SPATIAL = {"none": "none", "dropout2d": "Dropout2d p=0.1", "dropblock": "DropBlock p=0.1, 3x3"}
CHANNELS, HIDDEN, LR, MOMENTUM = (16, 32), 128, 0.01, 0.9


def load_batches(batch, count):
    """``count`` batches of normalised 28x28 images (N, 28, 28) and labels."""
    try:
        images, labels = load_dataset("fashion-mnist", train=True, download=False)
        source = "Fashion-MNIST"
    except minigrad.data.DataError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (batch * count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, batch * count)
        source = "random images"
    mean, std = NORMALIZATION["fashion-mnist"]
    x = ((images[:batch * count] / 255 - mean) / std).astype(np.float32)
    y = labels[:batch * count].astype(np.int64)
    return [(x[k:k + batch], y[k:k + batch]) for k in range(0, batch * count, batch)], source


def minigrad_variants(spatial, batches):
    generator = minigrad.Generator(0)
    model = build_cnn(CHANNELS, HIDDEN, spatial, 0.1, 3, 0.5, generator=generator)
    optimizer = minigrad.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(minigrad.Tensor(x), minigrad.Tensor(y)) for x, y in batches]

    def train():
        model.train()
        for x, y in data:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def infer():
        model.eval()
        with minigrad.no_grad():
            for x, _ in data:
                model(x)
    return train, infer


def torch_variants(spatial, batches):
    import torch
    nn = torch.nn
    torch.manual_seed(0)

    def stage(c_in, c_out):
        modules = [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        return modules + ([nn.Dropout2d(0.1)] if spatial == "dropout2d" else [])

    (c1, c2) = CHANNELS
    model = nn.Sequential(*stage(1, c1), *stage(c1, c2), nn.Flatten(),
                          nn.Linear(c2 * 7 * 7, HIDDEN), nn.ReLU(), nn.Dropout(0.5),
                          nn.Linear(HIDDEN, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    data = [(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)) for x, y in batches]

    def train():
        model.train()
        for x, y in data:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def infer():
        model.eval()
        with torch.inference_mode():
            for x, _ in data:
                model(x)
    return train, infer


def blas_threads():
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="batches per timing")
    parser.add_argument("--spatial", nargs="+", choices=list(SPATIAL), default=list(SPATIAL))
    parser.add_argument("--threads", type=int, default=None,
                        help="PyTorch threads (default: the BLAS thread count from the "
                             "environment, else PyTorch's default)")
    args = parser.parse_args(argv)
    batches, source = load_batches(args.batch, args.steps)
    try:
        import torch
        threads = args.threads or blas_threads()
        if threads:
            torch.set_num_threads(threads)
        torch_name = f"PyTorch {torch.__version__}"
        torch_threads = torch.get_num_threads()
    except ImportError:
        torch_name, torch_threads = None, None
    variants = {}
    for spatial in args.spatial:
        train, infer = minigrad_variants(spatial, batches)
        variants[("minigrad", spatial, "train")] = train
        variants[("minigrad", spatial, "infer")] = infer
        if torch_name and spatial != "dropblock":
            train, infer = torch_variants(spatial, batches)
            variants[("torch", spatial, "train")] = train
            variants[("torch", spatial, "infer")] = infer
    times = interleave(variants, rounds=args.rounds, warmup=1)
    images = args.batch * args.steps

    def rate(key):
        return images / median(times[key]) if key in times else None

    rows = []
    for spatial in args.spatial:
        for mode in ("train", "infer"):
            mg, pt = rate(("minigrad", spatial, mode)), rate(("torch", spatial, mode))
            rows.append([SPATIAL[spatial], mode, f"{mg:,.0f}",
                         "-" if pt is None else f"{pt:,.0f}",
                         "-" if pt is None else f"{pt / mg:.1f}"])
    print(f"\nData: {source}, batch {args.batch}, float32, {args.steps} batches per timing, "
          f"{args.rounds} interleaved rounds, median images/s; BLAS threads: "
          f"{blas_threads() or 'default'}"
          + (f"; {torch_name}, {torch_threads} threads" if torch_name else "; no PyTorch")
          + "\n")
    print(markdown_table(["spatial dropout", "mode", "minigrad img/s",
                          f"{torch_name or 'PyTorch'} img/s", "PyTorch / minigrad"], rows))
    return rows


if __name__ == "__main__":
    main()
