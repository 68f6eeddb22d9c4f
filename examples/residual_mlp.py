"""Train a deep residual MLP with DropPath (stochastic depth) on MNIST-format images.

    x (N, 784) -> Linear(784 -> width) -> D residual blocks -> LayerNorm -> Linear(width -> 10)
    block l:   h = h + DropPath_l(Linear(GELU(Linear(LayerNorm(h)))))

DropPath_l zeroes the whole branch of block l for a random subset of the samples (mask
(N, 1)): those samples skip the block and keep only the identity path. Its rate grows
linearly with depth, from 0 for the first block to --drop-path for the last
(``layers.dropout.drop_path_rates``), as in stochastic-depth ResNets and in ViTs. A sample
therefore passes through sum_l (1 - rate_l) blocks on average during training: the example
counts, for every training sample, how many blocks it actually went through, and prints the
measured mean per epoch next to that expected value. docs/residual_mlp.md shows the results.

    python examples/residual_mlp.py --dataset fashion-mnist                 # depth 8, rate 0.2
    python examples/residual_mlp.py --depth 16 --drop-path 0.3
    python examples/residual_mlp.py --drop-path 0                           # no DropPath

Interrupt it (Ctrl-C) at any time and add --resume to the same command to continue.
"""

import argparse

import numpy as np

import layers
from layers.dropout import DropPath, drop_path_rates
from minigrad.backend import as_numpy
from minigrad.ops.dropout import MaskedScale
from minigrad.optim import MaxNorm
from minigrad.random import Generator
from training import add_training_args, fit, make_loaders, make_optimizer, make_schedule, parse


def kept_samples(branch):
    """Which samples kept ``branch`` (bool, (N, 1)), read from the DropPath op that made it.

    None when no graph was recorded (no_grad) or in evaluation, where DropPath records no op.
    """
    op = branch.creator
    return op.get_mask() if isinstance(op, MaskedScale) else None


class ResidualBlock(layers.Module):
    """y = x + DropPath(Linear(GELU(Linear(LayerNorm(x))))), a pre-norm residual MLP block.

    After a training forward, ``kept`` is the (N, 1) bool mask of the samples that went
    through the branch (the others only took the identity path).

    Args:
        width:      features in and out.
        rate:       DropPath probability of ZEROING the branch of a sample.
        generator, device, dtype: as for Linear.

    Reference: Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016.
    https://arxiv.org/abs/1603.09382
    """

    def __init__(self, width, rate, generator=None, device="cpu", dtype=np.float32):
        opts = dict(device=device, dtype=dtype, generator=generator)
        self.norm = layers.LayerNorm(width, device=device, dtype=dtype)
        self.fc1 = layers.Linear(width, width, **opts)
        self.act = layers.GELU()
        self.fc2 = layers.Linear(width, width, **opts)
        self.drop_path = DropPath(rate, generator=generator)
        self.kept = None

    def forward(self, x):
        branch = self.drop_path(self.fc2(self.act(self.fc1(self.norm(x)))))
        self.kept = kept_samples(branch) if self.training else None
        return x + branch

    def extra_repr(self):
        return f"drop_path={self.drop_path.p:.3f}"


class ResidualMLP(layers.Module):
    """A stem Linear, ``depth`` ResidualBlocks with linearly growing DropPath rates, a head.

    During training, ``blocks_passed`` collects one host array per batch: for each sample,
    the number of blocks whose branch it went through (its effective depth).

    Args:
        depth:      number of residual blocks D.
        width:      features in every block.
        max_rate:   DropPath rate of the last block; block l gets max_rate * l / (D - 1).
        n_in, n_out: input features and classes.
        generator, device, dtype: as for Linear.
    """

    def __init__(self, depth=8, width=256, max_rate=0.2, n_in=784, n_out=10, generator=None,
                 device="cpu", dtype=np.float32):
        opts = dict(device=device, dtype=dtype, generator=generator)
        self.rates = drop_path_rates(depth, max_rate)
        self.stem = layers.Linear(n_in, width, **opts)
        self.blocks = [ResidualBlock(width, rate, **opts) for rate in self.rates]
        self.norm = layers.LayerNorm(width, device=device, dtype=dtype)
        self.head = layers.Linear(width, n_out, **opts)
        self.blocks_passed = []

    def forward(self, x):
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        masks = [block.kept for block in self.blocks]
        if self.training and all(m is not None for m in masks):
            passed = sum(m.astype(np.int32) for m in masks)   # (N, 1) on the device
            self.blocks_passed.append(as_numpy(passed).ravel())
        return self.head(self.norm(h))

    def expected_depth(self):
        """The mean number of blocks a sample passes through in training: sum of (1 - rate)."""
        return sum(1.0 - rate for rate in self.rates)


def depth_distribution(rates):
    """P(a sample passes through exactly d blocks), d = 0..D, for independent blocks.

    The count is a sum of independent Bernoulli(1 - rate_l) draws (a Poisson binomial
    distribution); its probabilities come from multiplying out prod_l (rate_l + keep_l * z).
    """
    probs = np.ones(1)
    for rate in rates:
        probs = np.convolve(probs, [rate, 1.0 - rate])
    return probs


def depth_report(model, batches_per_epoch, epochs):
    """Lines comparing the measured effective depth per epoch with its expected value.

    ``blocks_passed`` covers the batches trained in this process; whole epochs are counted
    back from the end (a run resumed mid-epoch has a partial first epoch, left out).
    """
    log = model.blocks_passed
    lines = [f"effective depth in training: expected {model.expected_depth():.3f} of "
             f"{len(model.blocks)} blocks (sum of 1 - rate)"]
    n_full = len(log) // batches_per_epoch
    for k in range(n_full):
        end = len(log) - (n_full - 1 - k) * batches_per_epoch
        counts = np.concatenate(log[end - batches_per_epoch:end])
        lines.append(f"  epoch {epochs - n_full + 1 + k}: measured mean {counts.mean():.3f} "
                     f"over {len(counts):,} samples (min {counts.min()}, max {counts.max()})")
    if log:
        counts = np.concatenate(log)
        measured = np.bincount(counts, minlength=len(model.blocks) + 1) / len(counts)
        expected = depth_distribution(model.rates)
        lines.append("  blocks passed:  " + " ".join(f"{d:>6d}" for d in range(len(measured))))
        lines.append("  measured share: " + " ".join(f"{v:6.3f}" for v in measured))
        lines.append("  expected share: " + " ".join(f"{v:6.3f}" for v in expected))
    return lines


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(parser, epochs=5, batch_size=64, lr=1e-3, optimizer="adamw")
    parser.add_argument("--depth", type=int, default=8, help="residual blocks (default: 8)")
    parser.add_argument("--width", type=int, default=256, help="block width (default: 256)")
    parser.add_argument("--drop-path", type=float, default=0.2,
                        help="DropPath rate (probability of SKIPPING the block) of the last "
                             "block; rates grow linearly from 0 at the first (default: 0.2)")
    return parser


def train(argv=None):
    """Parse ``argv``, train, and return (model, test_loader, history)."""
    args = parse(make_parser(), argv)
    if args.depth < 1 or args.width < 1:
        raise SystemExit(f"error: --depth and --width must be positive, got {args.depth} and "
                         f"{args.width}")
    if not 0 <= args.drop_path < 1:
        raise SystemExit(f"error: --drop-path is the probability of skipping the last block "
                         f"and must lie in [0, 1), got {args.drop_path}")
    generator = Generator(args.seed)
    model = ResidualMLP(args.depth, args.width, args.drop_path, generator=generator,
                        device=args.device, dtype=np.dtype(args.dtype))
    train_loader, test_loader = make_loaders(args, generator, flatten=True)
    optimizer = make_optimizer(args, model)
    constraint = MaxNorm(model, args.max_norm) if args.max_norm else None
    name = f"resmlp-d{args.depth}-w{args.width}-{args.dataset}-droppath{args.drop_path}"
    history = fit(model, optimizer, generator, train_loader, test_loader, args, name=name,
                  constraint=constraint, schedule=make_schedule(args, optimizer))
    print("\n".join(depth_report(model, len(train_loader), args.epochs)), flush=True)
    return model, test_loader, history


def main(argv=None):
    return train(argv)[2]


if __name__ == "__main__":
    main()
