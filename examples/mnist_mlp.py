"""Train an MLP with dropout on MNIST (or Fashion-MNIST, KMNIST), on CPU or CUDA.

The defaults reproduce the classic experiment: a 784-500-10 ReLU network with dropout 0.5
(inverted) after the hidden layer, SGD with learning rate 0.01, batch 64, 20 epochs, pixels
normalised with MNIST's mean 0.1307 and std 0.3081, cross-entropy loss.

    python examples/mnist_mlp.py                                  # the classic experiment
    python examples/mnist_mlp.py --device cuda                    # the same on a GPU (CuPy)
    python examples/mnist_mlp.py --dataset fashion-mnist --hidden 1024 1024 \\
        --input-p 0.2 --p 0.5 --momentum 0.9 --epochs 50          # the dropout paper's setup
    python examples/mnist_mlp.py --scaling classic                # scale by 1-p at test time
    python examples/mnist_mlp.py --p 0                            # no dropout, to compare
    python examples/mnist_mlp.py --dtype float16                  # mixed precision

Interrupt it (Ctrl-C) at any time and add --resume to the same command to continue; the final
weights are bit-identical to an uninterrupted run.
"""

import argparse

import numpy as np

import layers
from layers.dropout import Dropout
from minigrad.optim import MaxNorm
from minigrad.random import Generator
from training import (add_training_args, fit, make_loaders, make_mixed_precision,
                      make_optimizer, make_schedule, model_dtype, parse)

DTYPES = ("float32", "float64", "float16", "bfloat16")


def build_mlp(hidden, p, input_p, scaling, generator, device="cpu", dtype=np.float32,
              memory="bytes", n_in=784, n_out=10):
    """[Dropout(input_p)] -> (Linear -> ReLU -> Dropout(p)) per hidden layer -> Linear.

    A dropout with probability 0 is left out rather than kept as an identity.
    """
    def drop(rate):
        return [Dropout(rate, scaling=scaling, memory=memory, generator=generator)] \
            if rate > 0 else []

    modules = drop(input_p)
    width = n_in
    for size in hidden:
        modules += [layers.Linear(width, size, device=device, dtype=dtype, generator=generator),
                    layers.ReLU()] + drop(p)
        width = size
    modules.append(layers.Linear(width, n_out, device=device, dtype=dtype, generator=generator))
    return layers.Sequential(*modules)


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_training_args(parser, epochs=20, batch_size=64, lr=0.01, dtypes=DTYPES)
    parser.add_argument("--hidden", type=int, nargs="+", default=[500],
                        help="hidden layer sizes (default: 500)")
    parser.add_argument("--p", type=float, default=0.5,
                        help="dropout probability (of ZEROING) after each hidden layer")
    parser.add_argument("--input-p", type=float, default=0.0,
                        help="dropout probability on the input pixels (the paper used 0.2)")
    parser.add_argument("--scaling", default="inverted", choices=("inverted", "classic"),
                        help="inverted: scale by 1/(1-p) in training; classic: by 1-p at test")
    parser.add_argument("--memory", default="bytes", choices=("bytes", "bits", "seed"),
                        help="how dropout keeps its mask for backward")
    return parser


def train(argv=None):
    """Parse ``argv``, train, and return (model, test_loader, history)."""
    args = parse(make_parser(), argv)
    for name in ("p", "input_p"):
        if not 0 <= getattr(args, name) <= 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} is a probability of "
                             f"dropping and must lie in [0, 1], got {getattr(args, name)}")
    generator = Generator(args.seed)
    model = build_mlp(args.hidden, args.p, args.input_p, args.scaling, generator,
                      device=args.device, dtype=model_dtype(args), memory=args.memory)
    train_loader, test_loader = make_loaders(args, generator, flatten=True)
    optimizer = make_optimizer(args, model)
    amp = make_mixed_precision(args, model, optimizer)
    # under mixed precision the constraint acts on the float32 masters the optimizer updates
    constrained = model if amp is None else amp.master_params
    constraint = MaxNorm(constrained, args.max_norm) if args.max_norm else None
    sizes = "-".join(str(s) for s in [784, *args.hidden, 10])
    name = f"mlp-{sizes}-{args.dataset}-p{args.p}-{args.scaling}"
    if args.dtype != "float32":
        name += f"-{args.dtype}"
    history = fit(model, optimizer, generator, train_loader, test_loader, args, name=name,
                  constraint=constraint, schedule=make_schedule(args, optimizer), amp=amp)
    return model, test_loader, history


def main(argv=None):
    return train(argv)[2]


if __name__ == "__main__":
    main()
