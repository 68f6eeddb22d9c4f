"""Timing helpers shared by the benchmarks.

Timings on a shared machine drift by tens of percent over minutes, so variants are never
timed one after the other: ``interleave`` runs them in turn (A B C A B C ...) and the
benchmarks report medians and ratios between variants of the same run.
"""

import statistics
import time


def interleave(variants, rounds=5, warmup=1, number=1):
    """Time each callable in ``variants`` (name -> fn) ``rounds`` times, interleaved.

    Each timing is the mean of ``number`` calls. Returns name -> list of seconds.
    """
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return times


def median(values):
    return statistics.median(values)


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
