"""Autograd overhead per op: what recording and walking the graph costs on top of the math.

For a small elementwise op on a (64, 500) float32 array, the same forward and backward math is
timed twice: once through minigrad (``y = x * w; y.backward(g)``) and once as raw NumPy
(``y = x * w; grad_x = g * w; grad_w = g * x``). The difference is the price of the engine:
building the Tensor, recording the Function, the graph walk and gradient accumulation.
A chain of ten ops shows the price per op when one ``backward()`` is shared by many ops, and
the same op on a 2-element array shows the engine's cost alone, with almost no math.

How it is measured:
- the variants are timed in turn (A B A B ...), so a slow patch of the machine hits all of
  them, and each figure is a median over many rounds;
- the NumPy baseline keeps its gradients alive until the next call, as ``.grad`` does;
- glibc's malloc is told to keep freed memory (no heap trimming, no mmap for these sizes):
  by default a chain of ten ops page-faults about 250 times per call, on both sides, as
  freed (64, 500) arrays go back to the OS and come back; that is the kernel's time, not the
  engine's;
- where the arrays land in memory moves the NumPy time itself by several microseconds either
  way (cache sets, 4K aliasing between inputs and outputs), more than the engine costs. So
  the measurement is repeated in several trials, each with freshly allocated arrays, and the
  table gives the median over trials with the range.

PyTorch CPU is timed the same way when ``import torch`` works; it is never a dependency.

Run:  python benchmarks/bench_autograd.py [--trials 12] [--repeats 50] [--round-ms 1] [--no-torch]
"""

import argparse
import ctypes
import os
import platform
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import minigrad  # noqa: E402

SHAPE = (64, 500)
TINY_SHAPE = (2,)
CHAIN = 10


def minigrad_cases(x_np, w_np, g_np):
    """(one op, chain of CHAIN ops) through minigrad, forward and backward."""
    x = minigrad.Tensor(x_np, requires_grad=True)    # shares the arrays, no copy
    w = minigrad.Tensor(w_np, requires_grad=True)

    def one_op():
        x.grad = w.grad = None
        y = x * w
        y.backward(g_np)

    def chain():
        x.grad = w.grad = None
        y = x
        for _ in range(CHAIN):
            y = y * w
        y.backward(g_np)

    return one_op, chain


def raw_cases(x, w, g):
    """The same forward and backward math as raw array calls (NumPy or torch tensors)."""
    grads = {"x": None, "w": None}

    def one_op():
        grads["x"] = grads["w"] = None
        y = x * w
        grads["x"] = g * w
        grads["w"] = g * x
        return y

    def chain():
        grads["x"] = grads["w"] = None
        ys = [x]
        for _ in range(CHAIN):
            ys.append(ys[-1] * w)
        grad_y, grad_w = g, None
        for y_in in reversed(ys[:-1]):
            step_w = grad_y * y_in
            grad_w = step_w if grad_w is None else grad_w + step_w
            grad_y = grad_y * w
        grads["x"], grads["w"] = grad_y, grad_w

    return one_op, chain


def torch_cases(torch, x_np, w_np, g_np):
    """PyTorch CPU: (one op, chain) with autograd, and the same two without it."""
    x = torch.from_numpy(x_np).requires_grad_()
    w = torch.from_numpy(w_np).requires_grad_()
    g = torch.from_numpy(g_np)

    def one_op():
        x.grad = w.grad = None
        (x * w).backward(g)

    def chain():
        x.grad = w.grad = None
        y = x
        for _ in range(CHAIN):
            y = y * w
        y.backward(g)

    return (one_op, chain) + raw_cases(x.detach(), w.detach(), g)


def keep_freed_memory():
    """Ask glibc not to return freed memory to the OS (True if it could be asked)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_trim_threshold, 1 << 30)
                and libc.mallopt(m_mmap_threshold, 1 << 25))


def interleaved_medians(fns, repeats, round_ms):
    """Median microseconds per call of each function, timing them in turn A B A B ...

    Each round calls one function enough times to fill about ``round_ms`` milliseconds, so
    that the cost of switching between functions (cold caches) is spread over many calls.
    """
    calls = []
    for fn in fns:
        fn()    # warm-up: first-call allocations
        start = time.perf_counter()
        fn()
        calls.append(max(1, int(round_ms * 1e-3 / (time.perf_counter() - start))))
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls[i]):
                fn()
            samples[i].append((time.perf_counter() - start) / calls[i] * 1e6)
    return [statistics.median(s) for s in samples]


def one_trial(seed, torch, repeats, round_ms):
    """Times of every variant, in microseconds per call, on freshly allocated arrays."""
    rng = np.random.default_rng(seed)
    big = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(3)]
    tiny = [rng.standard_normal(TINY_SHAPE).astype(np.float32) for _ in range(3)]
    fns = {}
    fns["mg_one"], fns["mg_chain"] = minigrad_cases(*big)
    fns["np_one"], fns["np_chain"] = raw_cases(*big)
    fns["mg_tiny"], _ = minigrad_cases(*tiny)
    fns["np_tiny"], _ = raw_cases(*tiny)
    if torch is not None:
        fns["pt_one"], fns["pt_chain"], fns["ptraw_one"], fns["ptraw_chain"] = \
            torch_cases(torch, *big)
        fns["pt_tiny"], _, fns["ptraw_tiny"], _ = torch_cases(torch, *tiny)
    times = interleaved_medians(list(fns.values()), repeats, round_ms)
    return dict(zip(fns, times)), big + tiny


def summary(trials, engine, raw, n_ops):
    """'median [min, max]' of the per-op overhead over trials, and the median times."""
    overheads = [(t[engine] - t[raw]) / n_ops for t in trials]
    engine_us = statistics.median(t[engine] for t in trials)
    raw_us = statistics.median(t[raw] for t in trials)
    spread = f"{statistics.median(overheads):.1f} [{min(overheads):.1f}, {max(overheads):.1f}]"
    return raw_us, engine_us, spread


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=12, help="fresh array placements")
    parser.add_argument("--repeats", type=int, default=50, help="timed rounds per trial")
    parser.add_argument("--round-ms", type=float, default=1.0, help="length of a timed round")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if present")
    args = parser.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(1)
        except ImportError:
            pass

    steady_malloc = keep_freed_memory()
    trials, keep_alive = [], []
    for seed in range(args.trials):
        times, arrays = one_trial(seed, torch, args.repeats, args.round_ms)
        trials.append(times)
        keep_alive.append(arrays)   # so that the next trial's arrays land elsewhere

    cases = [(f"`y = x * w` then `y.backward(g)`, {SHAPE}", "one", 1),
             (f"chain of {CHAIN} `y = y * w`, one backward, {SHAPE}", "chain", CHAIN),
             (f"`y = x * w` then `y.backward(g)`, {TINY_SHAPE} (engine alone)", "tiny", 1)]
    print(f"Autograd overhead per op, float32; median over {args.trials} trials (range in "
          f"brackets), each the median of {args.repeats} interleaved rounds of about "
          f"{args.round_ms:g} ms")
    machine = (f"Python {platform.python_version()}, NumPy {np.__version__}, "
               f"{platform.machine()}, {os.cpu_count()} CPUs")
    if torch is not None:
        machine += f", PyTorch {torch.__version__} (1 thread)"
    if not steady_malloc:
        machine += "; glibc malloc settings unavailable"
    print(machine + "\n")
    header = "| case | NumPy math (us) | minigrad (us) | minigrad overhead (us/op) |"
    rule = "|---|---:|---:|---:|"
    if torch is not None:
        header += " PyTorch (us) | PyTorch overhead (us/op) |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    for name, key, n_ops in cases:
        raw_us, mg_us, mg_spread = summary(trials, f"mg_{key}", f"np_{key}", n_ops)
        line = f"| {name} | {raw_us:.1f} | {mg_us:.1f} | {mg_spread} |"
        if torch is not None:
            _, pt_us, pt_spread = summary(trials, f"pt_{key}", f"ptraw_{key}", n_ops)
            line += f" {pt_us:.1f} | {pt_spread} |"
        print(line)
    if torch is None:
        print("\nPyTorch: skipped (--no-torch) or `import torch` failed: no PyTorch column.")


if __name__ == "__main__":
    main()
