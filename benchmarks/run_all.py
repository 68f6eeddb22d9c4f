"""Run every benchmark available on this machine and write the report docs/benchmarks.md.

    python benchmarks/run_all.py                     # the full report (long: tens of minutes)
    python benchmarks/run_all.py --quick             # fewer rounds, to check that all run
    python benchmarks/run_all.py --only bench_mlp    # one benchmark (repeat --only for more)

Each benchmark runs as its own process, exactly as a user would run it, and its printed
tables go into the report under the command that produced them. The scripts compare
themselves with a reference in the same run (a hand-written NumPy loop, a naive dropout,
PyTorch when it is installed), so each table carries its own ratios. A script that is
missing or fails is listed as not run, with the reason. Scripts that take ``--device`` run a
second time with ``--device cuda`` when CuPy and a GPU are present.

--quick passes each script its own quick flag when it has one (``--quick``), or else fewer
rounds (``--rounds``, ``--repeats``, ``--trials``, ``--steps``: whichever its ``--help``
lists). The report then says so: quick figures are for checking, not for quoting.

The report ends with the project's performance goals, each with the figure parsed from the
tables and whether it is met. --only runs print the report instead of overwriting
docs/benchmarks.md, unless --out is given.
"""

import argparse
import datetime
import importlib.metadata
import os
import pathlib
import platform
import re
import shlex
import subprocess
import sys
import time
from typing import NamedTuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minigrad.backend import cuda_available  # noqa: E402
from minigrad.ops.dropout import DEFAULT_MEMORY  # noqa: E402

BENCHMARKS = {   # name -> (script, what it measures)
    "bench_autograd": ("benchmarks/bench_autograd.py", "autograd overhead per op"),
    "bench_random": ("benchmarks/bench_random.py", "mask generation (counter-based RNG)"),
    "bench_dropout": ("benchmarks/bench_dropout.py", "dropout forward + backward"),
    "bench_mlp": ("benchmarks/bench_mlp.py", "MLP training epoch"),
    "bench_cnn": ("benchmarks/bench_cnn.py", "CNN training"),
    "bench_babygpt": ("benchmarks/bench_babygpt.py", "babyGPT training throughput"),
    "bench_memory": ("benchmarks/bench_memory.py", "peak memory of a training step"),
    "mask_memory": ("docs/mask_memory.py", "bytes kept by dropout masks"),
}
QUICK_FLAGS = {"--rounds": "1", "--repeats": "5", "--trials": "2", "--steps": "2"}


class Result(NamedTuple):
    name: str
    command: str
    ran: bool
    output: str      # stdout when it ran; the reason when it did not
    seconds: float


class Goal(NamedTuple):
    text: str
    benchmark: str
    limit: float
    unit: str
    column: str      # start of the column header holding the figure
    row: tuple       # strings that the row must contain


GOALS = [
    Goal("autograd overhead per op, `y = x * w` on (64, 500) float32", "bench_autograd",
         5.0, "us", "minigrad overhead", ("(64, 500)", "y = x * w` then")),
    Goal(f"dropout forward + backward at (1024, 4096) float32 on CPU (memory={DEFAULT_MEMORY!r})",
         "bench_dropout", 1.5, "ns/element", "fwd+bwd ns/elem",
         ("1024x4096", f"memory={DEFAULT_MEMORY!r}")),
    Goal("MLP epoch vs the hand-written NumPy loop, default config (784-500-10)", "bench_mlp",
         1.15, "x", "x numpy loop", ("default", "minigrad")),
    Goal("MLP epoch vs the hand-written NumPy loop, 784-1024-1024-10 config", "bench_mlp",
         1.15, "x", "x numpy loop", ("big", "minigrad")),
]
GPU_GOALS = [
    "GPU dropout forward + backward within 1.5x of a device-to-device copy",
    "GPU dropout faster than PyTorch CUDA dropout",
    "GPU MLP epoch within 1.3x of PyTorch CUDA",
]


def version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def gpu_name():
    """The GPU's name from nvidia-smi, "CUDA GPU" if that fails, or None without CuPy + GPU."""
    if not cuda_available():
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out.splitlines()[0] if out else "CUDA GPU"


def read_proc(path, key):
    """The value of ``key:`` in a /proc file such as /proc/cpuinfo, or None."""
    try:
        for line in pathlib.Path(path).read_text().splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_lines(gpu):
    cpu = read_proc("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    mem = read_proc("/proc/meminfo", "MemTotal")
    ram = f"{int(mem.split()[0]) / 2 ** 20:.1f} GiB" if mem else "unknown"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        f"- RAM: {ram}",
        f"- OS: {platform.platform()}",
        f"- Python {platform.python_version()}, NumPy {version('numpy')}, "
        f"SciPy {version('scipy')}, PyTorch {version('torch')}",
        f"- GPU: {gpu or 'no GPU'}",
        f"- load average when the run started (1, 5, 15 min): {load}",
        f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
    ]


def script_options(script):
    """The long options a script's --help lists (empty if --help fails)."""
    try:
        out = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return set(re.findall(r"(--[a-z][a-z0-9-]*)", out))


def arguments(options, quick, device=None):
    args = []
    if quick:
        if "--quick" in options:
            args.append("--quick")
        else:
            for flag, value in QUICK_FLAGS.items():
                if flag in options:
                    args += [flag, value]
    if device is not None:
        args += ["--device", device]
    return args


def run_benchmark(name, script, args, timeout):
    command = " ".join(["python", script, *map(shlex.quote, args)])
    if not (ROOT / script).exists():
        return Result(name, command, False, f"{script} does not exist", 0.0)
    print(f"running: {command}", flush=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(name, command, False, f"timed out after {timeout} s", timeout)
    seconds = time.perf_counter() - start
    print(f"  {'done' if proc.returncode == 0 else 'FAILED'} in {seconds:.0f} s", flush=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-3:]
        return Result(name, command, False,
                      f"exit code {proc.returncode}: " + " / ".join(tail), seconds)
    return Result(name, command, True, proc.stdout, seconds)


def markdown_tables(text):
    """Every markdown table in ``text`` as (header cells, rows of cells)."""
    tables, block = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(block) >= 2:
            tables.append((block[0], block[2:]))
        block = []
    return tables


def number(cell):
    """The first number in a cell such as "3.1 [2.9, 3.4]" or "1.07x"; None if none."""
    match = re.search(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", cell.replace(",", ""))
    return float(match.group()) if match else None


def find_figure(output, column, row):
    """The number in ``column`` of the first table row that contains every string of ``row``."""
    for header, rows in markdown_tables(output):
        columns = [i for i, h in enumerate(header) if h.startswith(column)]
        if not columns:
            continue
        for cells in rows:
            if all(any(s in cell for cell in cells) for s in row) and len(cells) > columns[0]:
                return number(cells[columns[0]])
    return None


def goal_rows(results, gpu):
    rows = []
    for goal in GOALS:
        result = results.get(goal.benchmark)
        value = None if result is None or not result.ran else find_figure(
            result.output, goal.column, goal.row)
        if result is None or not result.ran:
            measured, status = "not measured", f"{goal.benchmark} did not run"
        elif value is None:
            measured, status = "not found", f"no such row in {goal.benchmark}'s tables"
        else:
            measured = f"{value:g} {goal.unit}"
            status = "met" if value <= goal.limit else "NOT met"
        rows.append([goal.text, f"<= {goal.limit:g} {goal.unit}", measured, status])
    for text in GPU_GOALS:
        status = ("in the (cuda) sections below, not parsed" if gpu
                  else "not measured: no GPU")
        rows.append([text, "", "", status])
    return rows


def output_markdown(output):
    """A script's stdout for the report: tables as they are, other text blocks fenced."""
    parts, block = [], []

    def flush():
        if not block:
            return
        if all(line.lstrip().startswith("|") for line in block):
            parts.append("\n".join(block))
        elif len(block) == 1:
            parts.append(block[0].strip())
        else:
            parts.append("```text\n" + "\n".join(block) + "\n```")
        block.clear()

    for line in output.rstrip().splitlines():
        is_table = line.lstrip().startswith("|")
        if not line.strip() or (block and is_table != block[-1].lstrip().startswith("|")):
            flush()
        if line.strip():
            block.append(line.rstrip())
    flush()
    return "\n\n".join(parts)


def report(results, gpu, quick, machine):
    lines = ["# Benchmarks", "",
             "Written by `python benchmarks/run_all.py" + (" --quick" if quick else "") + "`. "
             "Every table below was printed by the command above it, in one run on the "
             "machine described here; the ratios inside each table compare variants timed "
             "in the same run, and travel between machines better than absolute times.", ""]
    if quick:
        lines += ["**Quick run** (fewer rounds): for checking that everything runs, not for "
                  "quoting.", ""]
    lines += ["## Machine", "", *machine, "", "## Goals", "",
              "| goal | target | measured | status |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in goal_rows(results, gpu)]
    for name, (script, what) in BENCHMARKS.items():
        for key in (name, f"{name} (cuda)"):
            result = results.get(key)
            if result is None:
                continue
            lines += ["", f"## {key}: {what}", "", f"`{result.command}`", ""]
            if result.ran:
                lines += [output_markdown(result.output), "",
                          f"(took {result.seconds:.0f} s)"]
            else:
                lines.append(f"Not run: {result.output}.")
    if not gpu:
        lines += ["", "GPU benchmarks: not run, no CuPy with a CUDA GPU on this machine."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, to check it runs")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS),
                        help="run only this benchmark (may be repeated)")
    parser.add_argument("--out", default=None,
                        help="report file (default: docs/benchmarks.md; with --only: print)")
    parser.add_argument("--timeout", type=int, default=3600,
                        help="seconds allowed per benchmark (default 3600)")
    args = parser.parse_args(argv)
    gpu = gpu_name()
    machine = machine_lines(gpu)
    results = {}
    for name in args.only or BENCHMARKS:
        script = BENCHMARKS[name][0]
        options = script_options(script) if (ROOT / script).exists() else set()
        results[name] = run_benchmark(name, script, arguments(options, args.quick),
                                      args.timeout)
        if gpu and "--device" in options:
            results[f"{name} (cuda)"] = run_benchmark(
                name, script, arguments(options, args.quick, "cuda"), args.timeout)
    text = report(results, gpu, args.quick, machine)
    out = args.out or (None if args.only else str(ROOT / "docs" / "benchmarks.md"))
    if out is None:
        print(text)
    else:
        pathlib.Path(out).write_text(text)
        print(f"wrote {out}")
    return results


if __name__ == "__main__":
    main()
