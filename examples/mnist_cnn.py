"""Train a small CNN with spatial dropout (Dropout2d or DropBlock) on MNIST-format images.

The network, for 28x28 grey images (widths set by --channels, default 16 32, and --hidden):

    conv 3x3 (1 -> 16, pad 1) - [BatchNorm] - ReLU - maxpool 2  -> spatial dropout (N, 16, 14, 14)
    conv 3x3 (16 -> 32, pad 1) - [BatchNorm] - ReLU - maxpool 2 -> spatial dropout (N, 32, 7, 7)
    flatten - Linear(32*7*7 -> 128) - ReLU - Dropout(p) - Linear(128 -> 10)

The spatial dropout after each conv stage is Dropout2d (whole channels: mask (N, C, 1, 1)),
DropBlock2d (square blocks of each channel: mask (N, C, H, W)) or none. docs/cnn.md explains
why per-pixel dropout does little on feature maps and compares the three on Fashion-MNIST.

    python examples/mnist_cnn.py --dataset fashion-mnist              # Dropout2d, 5 epochs
    python examples/mnist_cnn.py --spatial dropblock --block-size 3   # DropBlock instead
    python examples/mnist_cnn.py --spatial none                       # no spatial dropout
    python examples/mnist_cnn.py --batch-norm --device cuda           # BatchNorm, on a GPU

Interrupt it (Ctrl-C) at any time and add --resume to the same command to continue; the final
weights are bit-identical to an uninterrupted run. On a busy CPU, OPENBLAS_NUM_THREADS=1 in
front of the command is often faster: many small matrix products gain nothing from threads
that wait for a free core.
"""

import argparse

import numpy as np

import layers
from layers.dropout import Dropout, Dropout2d
from layers.dropout_structured import DropBlock2d
from minigrad.optim import MaxNorm
from minigrad.random import Generator
from training import add_training_args, fit, make_loaders, make_optimizer, make_schedule, parse

SPATIAL = ("none", "dropout2d", "dropblock")


class AddChannelAxis(layers.Module):
    """(N, H, W) grey images -> (N, 1, H, W), the layout convolutions take."""

    def forward(self, x):
        if x.ndim == 4:
            return x
        return x.reshape(x.shape[0], 1, *x.shape[1:])


def spatial_dropout(kind, p, block_size, scaling, generator):
    """The dropout after a conv stage, as a list of 0 or 1 modules."""
    if kind == "none" or p == 0:
        return []
    if kind == "dropout2d":
        return [Dropout2d(p, scaling=scaling, generator=generator)]
    return [DropBlock2d(p, block_size=block_size, scaling=scaling, generator=generator)]


def build_cnn(channels=(16, 32), hidden=128, spatial="dropout2d", spatial_p=0.1, block_size=3,
              p=0.5, scaling="inverted", batch_norm=False, generator=None, device="cpu",
              dtype=np.float32, image_size=28, n_out=10):
    """Two conv stages (conv-[BN]-ReLU-maxpool-spatial dropout), then an MLP classifier.

    A dropout with probability 0 is left out rather than kept as an identity.
    """
    if spatial not in SPATIAL:
        raise ValueError(f"spatial must be one of {', '.join(SPATIAL)}, got {spatial!r}")
    opts = dict(device=device, dtype=dtype, generator=generator)
    modules = [AddChannelAxis()]
    width, size = 1, image_size
    for out in channels:
        modules.append(layers.Conv2d(width, out, 3, padding=1, **opts))
        if batch_norm:
            modules.append(layers.BatchNorm2d(out, device=device, dtype=dtype))
        modules += [layers.ReLU(), layers.MaxPool2d(2)]
        modules += spatial_dropout(spatial, spatial_p, block_size, scaling, generator)
        width, size = out, size // 2
    modules += [layers.Flatten(), layers.Linear(width * size * size, hidden, **opts),
                layers.ReLU()]
    if p > 0:
        modules.append(Dropout(p, scaling=scaling, generator=generator))
    modules.append(layers.Linear(hidden, n_out, **opts))
    return layers.Sequential(*modules)


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(parser, epochs=5, batch_size=64, lr=0.01, momentum=0.9)
    parser.add_argument("--channels", type=int, nargs=2, default=[16, 32],
                        metavar=("C1", "C2"), help="channels of the two conv stages "
                        "(default: 16 32)")
    parser.add_argument("--hidden", type=int, default=128,
                        help="width of the classifier's hidden layer (default: 128)")
    parser.add_argument("--spatial", default="dropout2d", choices=SPATIAL,
                        help="dropout on the feature maps after each conv stage: whole "
                             "channels (dropout2d, default), square blocks (dropblock) or none")
    parser.add_argument("--spatial-p", type=float, default=0.1,
                        help="probability of ZEROING a channel (dropout2d) or, for dropblock, "
                             "the target fraction of zeroed pixels (default: 0.1)")
    parser.add_argument("--block-size", type=int, default=3,
                        help="DropBlock's square side, at most 7 (the second stage's maps "
                             "are 7x7; default: 3)")
    parser.add_argument("--p", type=float, default=0.5,
                        help="dropout probability (of ZEROING) before the last layer")
    parser.add_argument("--scaling", default="inverted", choices=("inverted", "classic"),
                        help="inverted: scale by 1/(1-p) in training; classic: by 1-p at test")
    parser.add_argument("--batch-norm", action="store_true",
                        help="BatchNorm2d after each convolution")
    return parser


def check_cnn_args(args):
    for name in ("p", "spatial_p"):
        if not 0 <= getattr(args, name) <= 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} is a probability of "
                             f"dropping and must lie in [0, 1], got {getattr(args, name)}")
    if min(args.channels) < 1 or args.hidden < 1:
        raise SystemExit(f"error: --channels and --hidden must be positive, got "
                         f"{args.channels} and {args.hidden}")
    if args.spatial == "dropblock" and not 1 <= args.block_size <= 7:
        raise SystemExit(f"error: --block-size must lie in [1, 7]: the second stage's feature "
                         f"maps are 7x7, got {args.block_size}")


def train(argv=None):
    """Parse ``argv``, train, and return (model, test_loader, history)."""
    args = parse(make_parser(), argv)
    check_cnn_args(args)
    generator = Generator(args.seed)
    model = build_cnn(args.channels, args.hidden, args.spatial, args.spatial_p, args.block_size,
                      args.p, args.scaling, args.batch_norm, generator, device=args.device,
                      dtype=np.dtype(args.dtype))
    train_loader, test_loader = make_loaders(args, generator, flatten=False)
    optimizer = make_optimizer(args, model)
    constraint = MaxNorm(model, args.max_norm) if args.max_norm else None
    spatial = "none"
    if args.spatial != "none" and args.spatial_p > 0:
        spatial = f"{args.spatial}{args.spatial_p}"
        if args.spatial == "dropblock":
            spatial += f"-b{args.block_size}"
    name = f"cnn-{args.channels[0]}-{args.channels[1]}-{args.dataset}-{spatial}-p{args.p}"
    if args.batch_norm:
        name += "-bn"
    history = fit(model, optimizer, generator, train_loader, test_loader, args, name=name,
                  constraint=constraint, schedule=make_schedule(args, optimizer))
    return model, test_loader, history


def main(argv=None):
    return train(argv)[2]


if __name__ == "__main__":
    main()
