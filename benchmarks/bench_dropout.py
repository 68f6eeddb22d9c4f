"""Dropout forward + backward speed per memory mode, next to a naive NumPy dropout.

    python benchmarks/bench_dropout.py [--p 0.1] [--repeats 30]

For float32 inputs of shape (128, 1024) and (1024, 4096) it times, on the CPU,
``y = dropout(x, p, memory=mode); y.backward(g)`` through the Tensor API for each memory mode
("bytes", "bits", "seed"), and the naive NumPy version

    mask = rng.random(shape, dtype=np.float32) >= p; y = x*mask/(1-p); grad = g*mask/(1-p)

in the same run, plus two references: the floor of any NumPy implementation (one elementwise
pass each way with no mask at all: ``y = x * s``, ``grad = g * s``), and PyTorch's CPU dropout
when PyTorch is installed. The candidates are interleaved (one of each per round, so that background
load hits all of them alike), and the table reports medians in nanoseconds per element, the
ratio to the naive version, and how many bytes each mode keeps for backward. It prints a
markdown table.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import minigrad  # noqa: E402
from layers.dropout import Dropout  # noqa: E402
from minigrad import random  # noqa: E402
from minigrad.ops.dropout import MEMORY_MODES, dropout  # noqa: E402

SHAPES = [(128, 1024), (1024, 4096)]


def minigrad_step(mode, x, g, p, generator):
    """One forward + backward through the op; returns (forward s, backward s)."""
    start = time.perf_counter()
    y = dropout(x, p, generator=generator, memory=mode)
    middle = time.perf_counter()
    y.backward(g)
    end = time.perf_counter()
    x.grad = None
    return middle - start, end - middle


def naive_step(x, g, p, rng):
    """The textbook NumPy dropout: float uniforms, a compare, two multiplies and a divide."""
    start = time.perf_counter()
    mask = rng.random(x.shape, dtype=np.float32) >= p
    y = x * mask / (1 - p)
    middle = time.perf_counter()
    grad = g * mask / (1 - p)
    end = time.perf_counter()
    del y, grad
    return middle - start, end - middle


def floor_step(x, g, p):
    """No randomness, no mask: one multiply forward, one backward (fresh outputs, as always)."""
    scale = np.float32(1 / (1 - p))
    start = time.perf_counter()
    y = x * scale
    middle = time.perf_counter()
    grad = g * scale
    end = time.perf_counter()
    del y, grad
    return middle - start, end - middle


def torch_step(torch, x, g, p):
    start = time.perf_counter()
    y = torch.nn.functional.dropout(x, p, training=True)
    middle = time.perf_counter()
    y.backward(g)
    end = time.perf_counter()
    x.grad = None
    return middle - start, end - middle


def mask_bytes_of(mode, x, p):
    layer = Dropout(p, memory=mode, generator=random.Generator(0))
    layer(x)
    return layer.last_mask_bytes


def run(shape, p, repeats):
    data_rng = np.random.default_rng(0)
    x_np = data_rng.standard_normal(shape, dtype=np.float32)
    g = data_rng.standard_normal(shape, dtype=np.float32)
    x = minigrad.Tensor(x_np, requires_grad=True)
    generator, rng = random.Generator(1), np.random.default_rng(1)
    names = [f"minigrad memory={m!r}" for m in MEMORY_MODES] + ["naive NumPy"]
    steps = [lambda m=m: minigrad_step(m, x, g, p, generator) for m in MEMORY_MODES]
    steps.append(lambda: naive_step(x_np, g, p, rng))
    names.append("floor: y = x*s, grad = g*s (no mask)")
    steps.append(lambda: floor_step(x_np, g, p))
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        xt = torch.from_numpy(x_np.copy()).requires_grad_()
        gt = torch.from_numpy(g)
        names.append(f"PyTorch {torch.__version__} CPU dropout")
        steps.append(lambda: torch_step(torch, xt, gt, p))
    for step in steps:   # warm up: thread pool, scratch buffers, page faults
        step()
        step()
    times = {name: [] for name in names}
    for _ in range(repeats):
        for name, step in zip(names, steps):
            times[name].append(step())
    n = x_np.size
    rows = []
    for name in names:
        fwd = statistics.median(t[0] for t in times[name]) * 1e9 / n
        bwd = statistics.median(t[1] for t in times[name]) * 1e9 / n
        total = statistics.median(sum(t) for t in times[name]) * 1e9 / n
        rows.append([name, fwd, bwd, total])
    naive_total = rows[len(MEMORY_MODES)][3]
    mask_bytes = [mask_bytes_of(m, x, p) for m in MEMORY_MODES] + [x_np.size, 0]
    mask_bytes += [x_np.size] * (len(names) - len(mask_bytes))
    return [row + [naive_total / row[3], b] for row, b in zip(rows, mask_bytes)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p", type=float, default=0.1, help="drop probability")
    parser.add_argument("--repeats", type=int, default=30, help="rounds per shape")
    args = parser.parse_args()
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"minigrad.random threads: {random.get_num_threads()}, NumPy {np.__version__}, "
          f"p = {args.p}, float32, median of {args.repeats} interleaved rounds\n")
    print("| shape | implementation | forward ns/elem | backward ns/elem | fwd+bwd ns/elem "
          "| speed-up vs naive | mask bytes kept |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for shape in SHAPES:
        for name, fwd, bwd, total, speedup, nbytes in run(shape, args.p, args.repeats):
            print(f"| {shape[0]}x{shape[1]} | {name} | {fwd:.2f} | {bwd:.2f} | {total:.2f} "
                  f"| {speedup:.1f}x | {nbytes:,} |")


if __name__ == "__main__":
    main()
