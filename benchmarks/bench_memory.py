"""Peak memory of one training step, per dropout mask memory mode, measured with tracemalloc.

    python benchmarks/bench_memory.py

NumPy reports every array allocation to Python's ``tracemalloc``, so the peak of traced
memory during a step is the peak of its arrays: activations saved for backward, dropout
masks, gradients and temporaries. Each figure is that peak minus what was allocated just
before the step (weights, inputs, optimizer scratch from a warm-up step), on NumPy.

Cases:
    MLP    784-1024-1024-10, dropout 0.2 on the input and 0.5 after each hidden layer,
           batch 128: forward + cross-entropy + backward + SGD step.
    block  one GPT block of examples/gpt_model.py (pre-LayerNorm attention and feed-forward,
           dropout 0.1 on the attention weights, after the projection and after the
           feed-forward), d_model 256, 4 heads, sequence 128, batch 16: forward + backward.

Each runs with the masks kept as "bytes" (bool, 1 byte per element), "bits" (packed, 1 bit)
or "seed" (only the key; backward redraws the mask), and without dropout layers as the
reference. ``layers.dropout.mask_bytes(model)`` gives the bytes the masks hold after the
forward pass; the peak shows what that changes for the whole step. The peak is the largest
total at any one moment, and backward frees each op's saved arrays (masks included) as soon
as it has run, so a mask freed before that moment does not count. The MLP also runs in
float16 with ``minigrad.amp.MixedPrecision`` (float32 master weights) and "bytes" masks.
"""

import argparse
import gc
import os
import pathlib
import platform
import sys
import tracemalloc

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import minigrad  # noqa: E402
from gpt_model import Block  # noqa: E402
from layers.dropout import Dropout, mask_bytes  # noqa: E402
from minigrad import functional as F  # noqa: E402
from minigrad.amp import MixedPrecision  # noqa: E402
from minigrad.ops.dropout import MEMORY_MODES  # noqa: E402
from minigrad.optim import SGD  # noqa: E402
from mnist_mlp import build_mlp  # noqa: E402
from timing import markdown_table  # noqa: E402

MIB = 2.0 ** 20
NO_DROPOUT = "none (no dropout layers)"


def step_peak(step, clear):
    """Peak bytes allocated by ``step()`` above what was allocated before it.

    ``clear()`` drops the gradients of the previous step before the measurement starts, so
    that they are counted neither as held before nor as freed during the step.
    """
    step()      # warm-up: optimizer scratch and generator buffers are allocated once
    clear()
    gc.collect()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    step()
    _, peak = tracemalloc.get_traced_memory()
    return peak - before


def mlp_case(memory, batch, dtype="float32"):
    """(peak bytes, mask bytes) of one MLP training step; memory None: no dropout layers."""
    generator = minigrad.Generator(0)
    p, input_p = (0.5, 0.2) if memory else (0.0, 0.0)
    model = build_mlp([1024, 1024], p, input_p, "inverted", generator, memory=memory or "bytes")
    optimizer = SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(0)
    x = minigrad.Tensor(rng.standard_normal((batch, 784)).astype(dtype))
    y = minigrad.Tensor(rng.integers(0, 10, batch))
    if dtype == "float16":
        amp = MixedPrecision(model, optimizer, dtype=np.float16)

        def step():
            amp.step(F.cross_entropy(model(x).astype(np.float32), y))

        def clear():
            for master in amp.master_params:
                master.grad = None
    else:
        def step():
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()

        clear = optimizer.zero_grad
    return step_peak(step, clear), mask_bytes(model)


def block_case(memory, batch=16, seq=128, d_model=256, n_heads=4, p=0.1):
    """(peak bytes, mask bytes) of one transformer block forward + backward."""
    generator = minigrad.Generator(0)

    def make_dropout():
        return Dropout(p, memory=memory, generator=generator) if memory else None

    block = Block(d_model, n_heads, make_dropout, generator=generator)
    rng = np.random.default_rng(0)
    x = minigrad.Tensor(rng.standard_normal((batch, seq, d_model)).astype(np.float32),
                        requires_grad=True)
    g = rng.standard_normal((batch, seq, d_model)).astype(np.float32)

    def step():
        block(x).backward(g)

    def clear():
        block.zero_grad()
        x.grad = None

    return step_peak(step, clear), mask_bytes(block)


def measure_modes(measure):
    """{variant: (peak bytes, mask bytes)} for no dropout and each memory mode."""
    results = {NO_DROPOUT: measure(None)}
    results.update({mode: measure(mode) for mode in MEMORY_MODES})
    return results


def table_rows(case, results):
    """Rows with each peak next to the no-dropout reference and to the "bytes" mode."""
    reference, with_bytes = results[NO_DROPOUT][0], results["bytes"][0]
    return [[case, variant, f"{peak / MIB:.2f}", f"{peak / reference:.3f}",
             f"{(peak - with_bytes) / MIB:+.2f}", f"{masks:,}"]
            for variant, (peak, masks) in results.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="MLP batch size (default 128)")
    args = parser.parse_args(argv)
    tracemalloc.start()
    mlp = measure_modes(lambda mode: mlp_case(mode, args.batch))
    mlp["bytes, float16 MixedPrecision"] = mlp_case("bytes", args.batch, dtype="float16")
    block = measure_modes(block_case)
    tracemalloc.stop()
    rows = (table_rows(f"MLP 784-1024-1024-10, batch {args.batch}, train step", mlp)
            + table_rows("GPT block d256 h4, 16x128, fwd+bwd", block))
    print(f"Peak traced memory of one step (tracemalloc, NumPy {np.__version__}, Python "
          f"{platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs); "
          "float32 unless stated\n")
    print(markdown_table(["case", "dropout masks", "peak (MiB)", "x no dropout",
                          "vs bytes (MiB)", "mask bytes after forward"], rows))
    return rows


if __name__ == "__main__":
    main()
