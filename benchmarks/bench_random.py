"""Benchmark minigrad.random mask generation against a NumPy Generator baseline.

Measures nanoseconds per element of ``keep_mask`` and of the fused ``masked_scale`` (dropout
forward) on float32 arrays, next to the naive ``rng.random(shape, dtype=float32) >= p``.
Variants run interleaved (A B A B ...) and the median of the repeats is reported, so slow
drifts of the machine hit every column alike. "minigrad" uses the module's default thread
count (threads start at PARALLEL_THRESHOLD elements); "1 thread" forces a single thread.

Run: python benchmarks/bench_random.py [--repeats N]
"""
import argparse
import os
import random as pyrandom
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minigrad import random as mrandom  # noqa: E402

SHAPES = [(128, 1024), (1024, 4096)]
P_DROP = 0.1


def _variants(shape):
    """Return {name: callable} for one shape; every callable does one full operation."""
    keep = 1.0 - P_DROP
    scale = 1.0 / keep
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    y = np.empty_like(x)
    rng = np.random.default_rng(1)
    gen = mrandom.Generator(2)
    threads = mrandom.get_num_threads()

    def single_thread(fn):
        def run():
            mrandom.set_num_threads(1)
            try:
                fn()
            finally:
                mrandom.set_num_threads(threads)
        return run

    def keep_mask():
        mrandom.keep_mask(np, shape, keep, gen)

    def masked_scale():
        mrandom.masked_scale(np, x, keep, scale, gen, out=y)

    def naive_mask():
        return rng.random(shape, dtype=np.float32) >= P_DROP

    def naive_dropout():
        np.multiply(x, naive_mask(), out=y)
        np.multiply(y, np.float32(scale), out=y)

    return {
        ("keep_mask", "minigrad"): keep_mask,
        ("keep_mask", "1 thread"): single_thread(keep_mask),
        ("keep_mask", "naive"): naive_mask,
        ("masked_scale", "minigrad"): masked_scale,
        ("masked_scale", "1 thread"): single_thread(masked_scale),
        ("masked_scale", "naive"): naive_dropout,
    }


def measure(shape, repeats):
    """Interleave all variants ``repeats`` times; return {key: median seconds}.

    Each round runs the variants in a fresh (seeded) order, so no variant always follows the
    same neighbour, whose cache and allocator footprint would otherwise bias it.
    """
    variants = list(_variants(shape).items())
    for _, fn in variants:
        fn()
    times = {key: [] for key, _ in variants}
    order = pyrandom.Random(0)
    for _ in range(repeats):
        order.shuffle(variants)
        for key, fn in variants:
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return {key: float(np.median(ts)) for key, ts in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=31)
    args = parser.parse_args()
    print(f"threads={mrandom.get_num_threads()} chunk={mrandom.CHUNK_SIZE} "
          f"p_drop={P_DROP} repeats={args.repeats} (ns per element, median)")
    header = f"{'shape':>12} {'op':>13} {'minigrad':>9} {'1 thread':>9} {'naive':>9} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        n = shape[0] * shape[1]
        med = measure(shape, args.repeats)
        for op in ("keep_mask", "masked_scale"):
            ns = {v: med[(op, v)] / n * 1e9 for v in ("minigrad", "1 thread", "naive")}
            print(f"{'x'.join(map(str, shape)):>12} {op:>13} {ns['minigrad']:9.3f} "
                  f"{ns['1 thread']:9.3f} {ns['naive']:9.3f} "
                  f"{ns['naive'] / ns['minigrad']:7.2f}x")


if __name__ == "__main__":
    main()
