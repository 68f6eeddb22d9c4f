"""How much memory dropout masks keep for backward, in each memory mode.

    python docs/mask_memory.py            # both models at the sizes used in docs/dropout.md
    python docs/mask_memory.py --quick    # the transformer layer measured at a small size

Each model is built for real and run forward once in training mode per memory mode
("bytes", "bits", "seed"); ``layers.dropout.mask_bytes`` then says how many bytes its dropout
masks hold. The same numbers follow from a formula, since a mask of n elements keeps n bytes
("bytes"), ceil(n / 8) bytes ("bits") or nothing ("seed"): the script checks that the two
agree and prints markdown tables, comparing the masks with the float32 activations.

1. The dropout paper's MLP, 784-1024-1024-10, dropout 0.2 on the input and 0.5 after each
   hidden layer, batch 128.
2. One GPT-style transformer layer (token and position embeddings, embedding dropout, then
   x + attention(LN(x)) and x + feed-forward(LN(x))) with dropout on the attention weights,
   after the attention projection and at the end of the feed-forward block; p = 0.1,
   d_model 768, 12 heads, sequence 512, batch 8.
3. The formula alone for an 80-layer model with d_model 8192 and 64 heads at sequence 4096,
   batch 1 (the shape of a 70B-parameter language model).
"""

import argparse
import math
import sys
import textwrap
from typing import NamedTuple

import numpy as np

from layers import (GELU, CausalSelfAttention, Dropout, Embedding, LayerNorm, Linear, Module,
                    Parameter, ReLU, Sequential, mask_bytes)
from minigrad import Tensor, random

MODES = ("bytes", "bits", "seed")
FLOAT32 = 4


class Site(NamedTuple):
    """One dropout layer: its mask shape, and whether backward needs the mask at all.

    A dropout whose input needs no gradient (the pixels of an MLP's input) keeps no mask:
    nothing upstream of it is differentiated.
    """

    name: str
    p: float
    mask_shape: tuple
    kept: bool = True


def mask_elements(site):
    return math.prod(site.mask_shape)


def formula_bytes(site, mode):
    """Bytes the mask of ``site`` keeps in ``mode``: n, ceil(n / 8) or 0 for n elements."""
    if not site.kept or mode == "seed":
        return 0
    n = mask_elements(site)
    return n if mode == "bytes" else -(-n // 8)


def mlp_sites(batch, sizes=(784, 1024, 1024, 10), ps=(0.2, 0.5, 0.5)):
    """One site in front of every Linear layer: the input, then each hidden layer."""
    names = ["input"] + [f"hidden {i}" for i in range(1, len(sizes) - 1)]
    return [Site(name, p, (batch, width), kept=i > 0)
            for i, (name, p, width) in enumerate(zip(names, ps, sizes))]


def transformer_sites(batch, seq, d_model, n_heads, p=0.1):
    """Embedding, attention weights (N, H, T, T), attention output and feed-forward output."""
    tokens = (batch, seq, d_model)
    return [Site("embedding", p, tokens),
            Site("attention weights", p, (batch, n_heads, seq, seq)),
            Site("attention output", p, tokens),
            Site("feed-forward output", p, tokens)]


def build_mlp(memory, generator, sizes=(784, 1024, 1024, 10), ps=(0.2, 0.5, 0.5)):
    """Return (model, {site name: dropout layer}) for (Dropout -> Linear [-> ReLU]) per layer."""
    modules, drops = [], {}
    for i, (name, p) in enumerate(zip([s.name for s in mlp_sites(1, sizes, ps)], ps)):
        drops[name] = Dropout(p, memory=memory, generator=generator)
        modules += [drops[name], Linear(sizes[i], sizes[i + 1], generator=generator)]
        if i < len(sizes) - 2:
            modules.append(ReLU())
    return Sequential(*modules), drops


class TransformerLayer(Module):
    """Token + position embedding, embedding dropout, then one pre-norm GPT block.

    h = drop(tok[ids] + pos[t]);  h = h + attn(LN(h));  y = h + drop(W2 gelu(W1 LN(h)))
    where attn drops its softmax weights and its projected output.
    """

    def __init__(self, vocab, seq, d_model, n_heads, p, memory, generator):
        def drop():
            return Dropout(p, memory=memory, generator=generator)

        self.tokens = Embedding(vocab, d_model, generator=generator)
        self.positions = Embedding(seq, d_model, generator=generator)
        self.embed_dropout = drop()
        self.ln1 = LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, attn_dropout=drop(),
                                        resid_dropout=drop(), generator=generator)
        self.ln2 = LayerNorm(d_model)
        self.ff = Sequential(Linear(d_model, 4 * d_model, generator=generator), GELU(),
                             Linear(4 * d_model, d_model, generator=generator), drop())

    def dropouts(self):
        """{site name: dropout layer}, named as in ``transformer_sites``."""
        return {"embedding": self.embed_dropout, "attention weights": self.attn.attn_dropout,
                "attention output": self.attn.resid_dropout, "feed-forward output": self.ff[3]}

    def forward(self, ids):
        positions = np.arange(ids.shape[1])
        h = self.embed_dropout(self.tokens(ids) + self.positions(positions))
        h = h + self.attn(self.ln1(h))
        return h + self.ff(self.ln2(h))


def graph_activation_bytes(y):
    """Bytes of the float tensors that the autograd graph of ``y`` holds, parameters excluded.

    Walks from ``y`` through every op's inputs. Views (reshape, transpose, indexing) share
    their base array, so each base array is counted once. Masks and other arrays that ops
    save as attributes are not included: this is the activations alone.
    """
    bases, seen, stack = {}, set(), [y]
    while stack:
        t = stack.pop()
        if id(t) in seen or isinstance(t, Parameter):
            continue
        seen.add(id(t))
        if t.data.dtype.kind == "f":
            base = t.data
            while base.base is not None:
                base = base.base
            bases[id(base)] = base.nbytes
        if t.creator is not None:
            stack.extend(x for x in t.creator.inputs if isinstance(x, Tensor))
    return sum(bases.values())


class Measurement(NamedTuple):
    per_site: dict      # site name -> bytes its layer reports (last_mask_bytes)
    total: int          # layers.dropout.mask_bytes(model)
    activations: int    # graph_activation_bytes of the output


def measure(model, drops, inputs):
    """Run one training-mode forward and read back the mask bytes of every dropout layer."""
    model.train()
    y = model(inputs)
    return Measurement({name: layer.last_mask_bytes for name, layer in drops.items()},
                       mask_bytes(model), graph_activation_bytes(y))


def measure_mlp(batch, sizes=(784, 1024, 1024, 10), ps=(0.2, 0.5, 0.5), seed=0):
    """{mode: Measurement} for the MLP at ``batch``, the same weights and input in each mode."""
    results = {}
    for mode in MODES:
        generator = random.Generator(seed)
        model, drops = build_mlp(mode, generator, sizes, ps)
        x = Tensor(random.normal(np, (batch, sizes[0]), generator))
        results[mode] = measure(model, drops, x)
    return results


def measure_transformer(batch, seq, d_model, n_heads, p=0.1, vocab=256, seed=0):
    """{mode: Measurement} for one TransformerLayer on random token ids."""
    results = {}
    for mode in MODES:
        generator = random.Generator(seed)
        model = TransformerLayer(vocab, seq, d_model, n_heads, p, mode, generator)
        ids = (random.random_bits(np, (batch, seq), generator) % vocab).astype(np.int64)
        results[mode] = measure(model, model.dropouts(), ids)
    return results


def check_against_formula(sites, results):
    """Raise AssertionError unless every measured byte count equals ``formula_bytes``."""
    for mode, result in results.items():
        for site in sites:
            expected, got = formula_bytes(site, mode), result.per_site[site.name]
            assert got == expected, (f"{site.name}, memory={mode!r}: measured {got} bytes, "
                                     f"formula {expected}")
        assert result.total == sum(formula_bytes(s, mode) for s in sites), mode


def fmt_bytes(n):
    """Human-readable size in binary units (KiB, MiB, GiB)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} B"


def fmt_shape(shape):
    return "(" + ", ".join(str(n) for n in shape) + ")"


def site_table(sites, count=1, bytes_of=formula_bytes):
    """Markdown rows: per site, mask elements, bytes per mode, the float32 activation masked.

    ``count`` multiplies every row (identical layers); ``bytes_of(site, mode)`` gives a row's
    bytes (the formula, or a measurement).
    """
    head = ["| dropout site | p | mask shape | mask elements | " +
            " | ".join(f'"{m}"' for m in MODES) + " | activation (float32) |",
            "| --- | --- | --- | ---: | " + "---: | " * len(MODES) + "---: |"]
    rows, totals = [], [0] * (len(MODES) + 2)
    for site in sites:
        mult = count(site) if callable(count) else count
        n = mask_elements(site) * mult
        by_mode = [bytes_of(site, m) * mult for m in MODES]
        act = mask_elements(site) * FLOAT32 * mult   # every mask here has the activation's shape
        name = site.name + ("" if site.kept else " (no mask kept)") + (
            f" (× {mult} layers)" if mult > 1 else "")
        rows.append(f"| {name} | {site.p} | {fmt_shape(site.mask_shape)} | {n:,} | " +
                    " | ".join(fmt_bytes(b) for b in by_mode) + f" | {fmt_bytes(act)} |")
        for i, value in enumerate([n, *by_mode, act]):
            totals[i] += value
    rows.append("| **total** | | | " + f"{totals[0]:,} | " +
                " | ".join(f"**{fmt_bytes(b)}**" for b in totals[1:-1]) +
                f" | {fmt_bytes(totals[-1])} |")
    return "\n".join(head + rows), totals


def fraction_line(results):
    """One sentence: the masks as a share of the activations the graph holds."""
    acts = results["bytes"].activations
    shares = ", ".join(f'{100 * results[m].total / acts:.1f}% ("{m}")' for m in MODES)
    return (f"Activations held by the autograd graph (float32, parameters excluded, measured): "
            f"{fmt_bytes(acts)}; the masks add {shares}.")


def paragraph(text):
    return textwrap.fill(text, 96) + "\n"


def report_measured(title, sites, results, note=""):
    check_against_formula(sites, results)

    def measured(site, mode):
        return results[mode].per_site[site.name]

    table, _ = site_table(sites, bytes_of=measured)
    print(f"### {title}\n\n{table}\n")
    print(paragraph(f"{fraction_line(results)} Measured bytes equal the formula n / ceil(n/8) / 0 "
                    f"at every site. {note}"))


def report_large(layers=80, d_model=8192, n_heads=64, seq=4096, batch=1, p=0.1):
    """Formula only: the per-layer sites repeated ``layers`` times, one embedding dropout."""
    sites = transformer_sites(batch, seq, d_model, n_heads, p)
    table, _ = site_table(sites, count=lambda s: 1 if s.name == "embedding" else layers)
    # Korthikanti et al. (2022, https://arxiv.org/abs/2205.05198) count s*b*h*(34 + 5*a*s/h)
    # bytes of activations per layer with 16-bit activations and 1-byte masks (a heads,
    # s sequence, b batch, h width).
    per_layer = seq * batch * d_model * (34 + 5 * n_heads * seq / d_model)
    masks_per_layer = n_heads * seq * seq * batch + 2 * seq * batch * d_model
    print(f"### {layers} layers, d_model {d_model}, {n_heads} heads, sequence {seq}, batch "
          f"{batch} (formula)\n\n{table}\n")
    print(paragraph(f"With 16-bit activations and 1-byte masks, Korthikanti et al. (2022) count "
                    f"sbh(34 + 5as/h) = {fmt_bytes(per_layer)} of activations per layer; the "
                    f"three masks are {fmt_bytes(masks_per_layer)} of that "
                    f"({100 * masks_per_layer / per_layer:.1f}%), "
                    f"{fmt_bytes(layers * masks_per_layer)} over {layers} layers."))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="measure the transformer layer at batch 2, sequence 64, d_model 64, "
                             "4 heads (the formula still gives the full-size table)")
    args = parser.parse_args(argv)

    batch = 128
    report_measured(f"MLP 784-1024-1024-10, batch {batch} (measured)", mlp_sites(batch),
                    measure_mlp(batch), note="The input dropout keeps no mask: the pixels need "
                    "no gradient, so its backward never runs.")

    full = dict(batch=8, seq=512, d_model=768, n_heads=12)
    size = dict(batch=2, seq=64, d_model=64, n_heads=4) if args.quick else full
    title = "Transformer layer, d_model {d_model}, {n_heads} heads, sequence {seq}, batch {batch}"
    report_measured(title.format(**size) + " (measured)", transformer_sites(**size),
                    measure_transformer(**size))
    if args.quick:
        table, _ = site_table(transformer_sites(**full))
        print(f"### {title.format(**full)} (formula)\n\n{table}\n")
    report_large()
    return 0


if __name__ == "__main__":
    sys.exit(main())
