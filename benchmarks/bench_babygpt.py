"""Training tokens per second of babyGPT: minigrad vs PyTorch CPU on the same model.

    python benchmarks/bench_babygpt.py                       # 1 thread each, 5 rounds
    python benchmarks/bench_babygpt.py --threads 2 --rounds 7

Both sides run the model of examples/babygpt.py with its defaults: 3 pre-LayerNorm blocks,
4 heads, width 64, block size 64, batch 32, a vocabulary of 100 characters, dropout 0.2 at
the five positions (embedding, attention weights, residual after the projection, end of the
feed-forward block; the classifier head is not used by the language-model step), float32.
A step is forward, cross-entropy, backward, gradient clipping at norm 1 and an AdamW update.
PyTorch writes attention out as the same explicit math (scores, causal mask, softmax,
dropout on the weights), not a fused kernel. The same model also runs with dropout 0, to
show what dropout costs on each side.

Variants are timed in turn (A B C D A B C D ...) so that drift on a shared machine hits all
alike; the table gives medians and the PyTorch / minigrad ratio. ``--threads`` sets the BLAS
threads of both (and PyTorch's intra-op threads) before NumPy is imported: on a loaded
machine more threads than free cores make both slower and noisier. PyTorch is optional: the
benchmark skips it when ``import torch`` fails.
"""

import argparse
import os
import pathlib
import platform
import sys

VOCAB, BLOCK, BATCH, N_LAYER, N_HEAD, N_EMBD = 100, 64, 32, 3, 4, 64


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="BLAS/PyTorch threads")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per variant")
    parser.add_argument("--steps", type=int, default=5, help="training steps per round")
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if present")
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import minigrad  # noqa: E402
from babygpt import train_step  # noqa: E402
from gpt_model import BabyGPT  # noqa: E402
from timing import interleave, markdown_table, median  # noqa: E402


def batches(n):
    """n fixed random (x, y) batches of token ids; the speed does not depend on the text."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, VOCAB, (n, BATCH, BLOCK + 1))
    return [(d[:, :-1], d[:, 1:]) for d in data]


def minigrad_steps(dropout, data, steps):
    model = BabyGPT(VOCAB, BLOCK, N_LAYER, N_HEAD, N_EMBD, dropout,
                    generator=minigrad.Generator(0))
    optimizer = minigrad.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    tensors = [(minigrad.Tensor(x), minigrad.Tensor(y)) for x, y in data]

    def run():
        for x, y in tensors[:steps]:
            train_step(model, optimizer, x, y, grad_clip=1.0)
    return run


def torch_model(torch, dropout):
    """The same GPT in PyTorch, module for module."""
    nn, F = torch.nn, torch.nn.functional

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv, self.proj = nn.Linear(N_EMBD, 3 * N_EMBD), nn.Linear(N_EMBD, N_EMBD)
            self.attn_drop, self.resid_drop = nn.Dropout(dropout), nn.Dropout(dropout)
            self.register_buffer("mask", torch.tril(torch.ones(BLOCK, BLOCK, dtype=torch.bool)))

        def forward(self, x):
            n, t, d = x.shape
            qkv = self.qkv(x).reshape(n, t, 3, N_HEAD, d // N_HEAD).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(-2, -1)) * (d // N_HEAD) ** -0.5
            scores = scores.masked_fill(~self.mask[:t, :t], float("-inf"))
            weights = self.attn_drop(F.softmax(scores, dim=-1))
            out = (weights @ v).transpose(1, 2).reshape(n, t, d)
            return self.resid_drop(self.proj(out))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = nn.LayerNorm(N_EMBD), Attention(), \
                nn.LayerNorm(N_EMBD)
            self.ffn = nn.Sequential(nn.Linear(N_EMBD, 4 * N_EMBD), nn.GELU(approximate="tanh"),
                                     nn.Linear(4 * N_EMBD, N_EMBD), nn.Dropout(dropout))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.ffn(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, N_EMBD), nn.Embedding(BLOCK, N_EMBD)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.Sequential(*[Block() for _ in range(N_LAYER)])
            self.ln_f, self.head = nn.LayerNorm(N_EMBD), nn.Linear(N_EMBD, VOCAB)

        def forward(self, idx):
            x = self.drop(self.tok(idx) + self.pos(torch.arange(idx.shape[1])))
            return self.head(self.ln_f(self.blocks(x)))

    return GPT()


def torch_steps(torch, dropout, data, steps):
    torch.manual_seed(0)
    model = torch_model(torch, dropout).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]

    def run():
        for x, y in tensors[:steps]:
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            loss.item()
    return run


def main():
    args = ARGS
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            print("PyTorch not installed: timing minigrad only")
    minigrad.random.set_num_threads(args.threads)
    data = batches(args.steps)
    variants = {}
    for p in (args.dropout, 0.0):
        variants[("minigrad", p)] = minigrad_steps(p, data, args.steps)
        if torch is not None:
            variants[("PyTorch", p)] = torch_steps(torch, p, data, args.steps)
    times = interleave(variants, rounds=args.rounds, warmup=1, number=1)
    tokens = BATCH * BLOCK
    rows = []
    for p in (args.dropout, 0.0):
        mg = median(times[("minigrad", p)]) / args.steps
        row = [p, f"{1e3 * mg:.1f}", f"{tokens / mg:,.0f}"]
        if torch is not None:
            pt = median(times[("PyTorch", p)]) / args.steps
            row += [f"{1e3 * pt:.1f}", f"{tokens / pt:,.0f}", f"{mg / pt:.2f}"]
        rows.append(row)
    print(f"babyGPT training step ({N_LAYER} layers, {N_HEAD} heads, width {N_EMBD}, block "
          f"{BLOCK}, batch {BATCH}, vocabulary {VOCAB}, float32, AdamW, clip 1.0); median of "
          f"{args.rounds} interleaved rounds of {args.steps} steps")
    machine = (f"Python {platform.python_version()}, NumPy {np.__version__}, "
               f"{platform.machine()}, {os.cpu_count()} CPUs, {args.threads} thread(s)")
    if torch is not None:
        machine += f", PyTorch {torch.__version__}"
    print(machine + "\n")
    header = ["dropout p", "minigrad ms/step", "minigrad tokens/s"]
    if torch is not None:
        header += ["PyTorch ms/step", "PyTorch tokens/s", "minigrad time / PyTorch time"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
