"""babyGPT's model: a small GPT with dropout at every classic position, its data, its sampler.

Dropout sits in five places, each a ``layers.Dropout(p)`` (p is the probability of ZEROING):

    1. embedding     on tok_emb(idx) + pos_emb(t), before the first block
    2. attention     on the softmax weights of every head (inside CausalSelfAttention)
    3. residual      on the attention output after its projection, before the residual add
    4. feed-forward  at the end of Linear -> GELU -> Linear, before the residual add
    5. classifier    in the sequence-classification head, before its last projection

Every one is a child Module of the model, so ``model.train()`` / ``model.eval()`` switch them
all, and all of them draw their masks from the one generator given to the model.

The data are characters: ``Vocabulary`` maps them to ids, ``split`` cuts the id array into a
contiguous 90/10 train/validation split, and ``get_batch`` draws random windows from one split
(``reversed_windows`` too, for the classifier's task: is this window reversed?).

``generate`` samples text in eval mode (dropout off) with temperature, top-k and top-p; its
random numbers come from its own ``minigrad.random.Generator``, never from a global RNG.
"""

import numpy as np

import layers
import minigrad
from layers.module import Module
from minigrad import ops, random
from minigrad.backend import device_of, get_xp, to_device, xp_for_device


class FeedForward(Module):
    """Position-wise feed-forward block: Linear(D, 4D) -> GELU -> Linear(4D, D) -> Dropout.

    The dropout at the end (position 4) acts on what the block adds to the residual stream.

    Args:
        d_model:    D.
        dropout:    a Module applied last (layers.Dropout(p)), or None.
        device, dtype, generator: as for layers.Linear.

    Reference: Vaswani et al. (2017), section 3.3 and 5.4, https://arxiv.org/abs/1706.03762
    """

    def __init__(self, d_model, dropout=None, device="cpu", dtype=np.float32, generator=None):
        self.fc = layers.Linear(d_model, 4 * d_model, device=device, dtype=dtype,
                                generator=generator)
        self.act = layers.GELU()
        self.proj = layers.Linear(4 * d_model, d_model, device=device, dtype=dtype,
                                  generator=generator)
        self.dropout = dropout

    def forward(self, x):
        y = self.proj(self.act(self.fc(x)))
        return y if self.dropout is None else self.dropout(y)


class Block(Module):
    """One pre-LayerNorm transformer block: x + attn(ln1(x)), then + ffn(ln2(x)).

    Args:
        d_model, n_heads: D and H of the attention.
        make_dropout: a function returning a fresh dropout Module (or None), called three
                    times: attention weights, residual after the projection, end of the
                    feed-forward block.
        device, dtype, generator: as for layers.Linear.

    Reference: Radford et al., "Language Models are Unsupervised Multitask Learners" (GPT-2,
    2019), section 2.3 (layer norm moved to the input of each sub-block).
    """

    def __init__(self, d_model, n_heads, make_dropout, device="cpu", dtype=np.float32,
                 generator=None):
        common = dict(device=device, dtype=dtype)
        self.ln1 = layers.LayerNorm(d_model, **common)
        self.attn = layers.CausalSelfAttention(d_model, n_heads, attn_dropout=make_dropout(),
                                               resid_dropout=make_dropout(),
                                               generator=generator, **common)
        self.ln2 = layers.LayerNorm(d_model, **common)
        self.ffn = FeedForward(d_model, make_dropout(), generator=generator, **common)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class ClassificationHead(Module):
    """Sequence classifier on one token's features: dense -> tanh -> dropout -> out_proj.

    The RoBERTa placement: dropout (position 5) acts on the pooled features right before the
    final projection. (RoBERTa's head also drops its input; here the features come out of the
    final LayerNorm of a network that already has four dropout positions.)

    Args:
        d_model:    D, the size of the features.
        n_classes:  the number of classes.
        dropout:    a Module applied before out_proj, or None.
        device, dtype, generator: as for layers.Linear.

    Reference: Liu et al., "RoBERTa" (2019), https://arxiv.org/abs/1907.11692, and its
    ``RobertaClassificationHead``.
    """

    def __init__(self, d_model, n_classes, dropout=None, device="cpu", dtype=np.float32,
                 generator=None):
        self.dense = layers.Linear(d_model, d_model, device=device, dtype=dtype,
                                   generator=generator)
        self.dropout = dropout
        self.out_proj = layers.Linear(d_model, n_classes, device=device, dtype=dtype,
                                      generator=generator)

    def forward(self, features):
        h = ops.tanh(self.dense(features))
        if self.dropout is not None:
            h = self.dropout(h)
        return self.out_proj(h)


class BabyGPT(Module):
    """A character-level GPT: embeddings, n_layer pre-LN blocks, final LayerNorm, LM head.

    forward(idx)   (N, T) int token ids -> (N, T, vocab_size) logits of the next token
    classify(idx)  (N, T) int token ids -> (N, n_classes) logits from the last position's
                   features, which have seen the whole window (attention is causal)

    Args:
        vocab_size: the number of distinct tokens (characters).
        block_size: the longest context (positions 0 .. block_size - 1 are embedded).
        n_layer, n_head, n_embd: blocks, heads per block, width D.
        dropout:    p, the probability of ZEROING, at all five positions (0 leaves them out).
        scaling:    "inverted" (default) or "classic", for every dropout.
        n_classes:  outputs of the classification head.
        device, dtype, generator: where the weights live, their dtype, and the generator for
                    the initial weights AND the dropout masks.

    Reference: Radford et al., GPT (2018) and GPT-2 (2019); the sizes and the dropout default
    0.2 follow small character-level GPTs trained on a laptop.
    """

    def __init__(self, vocab_size, block_size, n_layer=3, n_head=4, n_embd=64, dropout=0.2,
                 scaling="inverted", n_classes=2, device="cpu", dtype=np.float32,
                 generator=None):
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                            ("n_layer", n_layer), ("n_classes", n_classes)):
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"BabyGPT: {name} must be a positive integer, got {value!r}")
        if n_head <= 0 or n_embd % n_head:
            raise ValueError(f"BabyGPT: n_head ({n_head}) must be positive and divide n_embd "
                             f"({n_embd})")
        if not 0 <= dropout < 1:
            raise ValueError(f"BabyGPT: dropout is the probability of zeroing and must lie in "
                             f"[0, 1), got {dropout}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_head, self.n_embd = n_layer, n_head, n_embd
        self.dropout, self.scaling = dropout, scaling

        def make_dropout():
            if dropout == 0:
                return None
            return layers.Dropout(dropout, scaling=scaling, generator=generator)

        common = dict(device=device, dtype=dtype, generator=generator)
        self.tok_emb = layers.Embedding(vocab_size, n_embd, **common)
        self.pos_emb = layers.Embedding(block_size, n_embd, **common)
        self.emb_dropout = make_dropout()
        self.blocks = [Block(n_embd, n_head, make_dropout, **common) for _ in range(n_layer)]
        self.ln_f = layers.LayerNorm(n_embd, device=device, dtype=dtype)
        self.lm_head = layers.Linear(n_embd, vocab_size, **common)
        self.classifier = ClassificationHead(n_embd, n_classes, make_dropout(), **common)

    def features(self, idx):
        """(N, T) token ids -> (N, T, D) features after the final LayerNorm."""
        idx = idx if isinstance(idx, minigrad.Tensor) else minigrad.Tensor(idx)
        if idx.ndim != 2:
            raise ValueError(f"BabyGPT: expected token ids of shape (N, T), got {idx.shape}")
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"BabyGPT: a sequence of {t} tokens is longer than block_size "
                             f"{self.block_size}; feed the last {self.block_size} only")
        positions = get_xp(idx.data).arange(t)
        x = self.tok_emb(idx) + self.pos_emb(positions)       # (N, T, D) + (T, D)
        if self.emb_dropout is not None:
            x = self.emb_dropout(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx):
        return self.lm_head(self.features(idx))

    def classify(self, idx):
        h = self.features(idx)
        return self.classifier(h[:, -1, :])                   # (N, T, D) -> (N, D)

    def dropout_positions(self):
        """Name -> dropout Module of every dropout in the model, grouped by position."""
        found = {"embedding": [self.emb_dropout], "attention weights": [],
                 "residual after projection": [], "end of feed-forward": [],
                 "classifier head": [self.classifier.dropout]}
        for block in self.blocks:
            found["attention weights"].append(block.attn.attn_dropout)
            found["residual after projection"].append(block.attn.resid_dropout)
            found["end of feed-forward"].append(block.ffn.dropout)
        return found

    def extra_repr(self):
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_layer={self.n_layer}, n_head={self.n_head}, n_embd={self.n_embd}, "
                f"dropout={self.dropout}, scaling={self.scaling!r}")


class Vocabulary:
    """Characters <-> integer ids, the sorted set of characters of a text."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"characters {unknown!r} are not in the vocabulary")
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in ids)


def split(data, train_fraction=0.9):
    """Contiguous split: the first 90% trains, the last 10% validates (no shared windows)."""
    n = int(train_fraction * len(data))
    return {"train": data[:n], "val": data[n:]}


def window_starts(data, block_size, batch_size, generator):
    """batch_size random window starts in [0, len(data) - block_size - 1], from ``generator``."""
    high = len(data) - block_size
    u = random.uniform(np, (batch_size,), generator, dtype=np.float64)
    return (u * high).astype(np.int64)


def get_batch(data, block_size, batch_size, generator, device="cpu"):
    """Random windows x (N, T) and their next characters y (N, T), as Tensors on ``device``."""
    starts = window_starts(data, block_size, batch_size, generator)
    rows = starts[:, None] + np.arange(block_size)            # (N, T) positions in data
    return (minigrad.Tensor(to_device(data[rows], device)),
            minigrad.Tensor(to_device(data[rows + 1], device)))


def reversed_windows(data, block_size, batch_size, generator, device="cpu"):
    """Windows of text, each reversed with probability 1/2; labels 1 = reversed, 0 = not."""
    starts = window_starts(data, block_size, batch_size, generator)
    windows = data[starts[:, None] + np.arange(block_size)]
    labels = (random.uniform(np, (batch_size,), generator) < 0.5).astype(np.int64)
    windows = np.where(labels[:, None] == 1, windows[:, ::-1], windows)
    return (minigrad.Tensor(to_device(windows, device)),
            minigrad.Tensor(to_device(labels, device)))


def check_sampling(temperature, top_k, top_p):
    """Reject bad sampling settings with a message that says how to fix them."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and (not isinstance(top_k, (int, np.integer)) or top_k <= 0):
        raise ValueError(f"top_k must be a positive integer or None (no limit), got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1] or be None (no limit), got {top_p}")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Draw one token per row from raw logits (N, V); returns (N,) int indices.

    1. temperature: softmax(logits / temperature); 0 picks the argmax (greedy), small
       values approach it, 1 leaves the model's distribution as it is.
    2. top_k: keep the k most likely tokens.
    3. top_p (nucleus): keep the smallest set of most likely tokens whose probability
       reaches top_p (the most likely token is always kept).
    4. Renormalise what is kept and draw by inverse CDF: u ~ U[0, 1) from ``generator``
       (a minigrad.random.Generator), and the token whose cumulative probability first
       exceeds u times the kept mass.

    Tokens are sorted most likely first, so both filters keep a prefix of that order.
    """
    check_sampling(temperature, top_k, top_p)
    xp = get_xp(logits)
    logits = logits.astype(np.float64)
    if temperature == 0:
        return logits.argmax(axis=-1)
    order = xp.argsort(-logits, axis=-1)                      # most likely first
    z = xp.take_along_axis(logits, order, axis=-1) / temperature
    probs = xp.exp(z - z[:, :1])                              # z[:, 0] is the max
    probs = probs / probs.sum(axis=-1, keepdims=True)
    keep = xp.ones(probs.shape, dtype=bool)
    if top_k is not None:
        keep = keep & (xp.arange(probs.shape[-1]) < top_k)
    if top_p is not None:
        mass_before = xp.cumsum(probs, axis=-1) - probs
        keep = keep & (mass_before < top_p)
    cdf = xp.cumsum(xp.where(keep, probs, 0), axis=-1)
    u = random.uniform(xp, (probs.shape[0], 1), generator, dtype=np.float64) * cdf[:, -1:]
    rank = xp.minimum((cdf <= u).sum(axis=-1), probs.shape[-1] - 1)
    return xp.take_along_axis(order, rank[:, None], axis=-1)[:, 0]


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
             generator=None):
    """Extend token ids ``idx`` (N, T) by ``max_new_tokens`` sampled tokens; returns (N, T + new).

    Runs in eval mode (dropout off: the only randomness is the sampling) without recording a
    graph, feeds at most ``model.block_size`` trailing tokens, and restores the model's mode.
    ``generator`` (a minigrad.random.Generator) makes the sample reproducible: the same seed
    gives the same text. See ``sample_next`` for temperature, top_k and top_p.
    """
    check_sampling(temperature, top_k, top_p)
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    params = model.parameters()
    device = device_of(params[0].data) if params else "cpu"
    idx = to_device(idx.data if isinstance(idx, minigrad.Tensor) else idx, device)
    xp = xp_for_device(device)
    block_size = getattr(model, "block_size", None)
    was_training = model.training
    model.eval()
    try:
        with minigrad.no_grad():
            for _ in range(max_new_tokens):
                context = idx if block_size is None else idx[:, -block_size:]
                logits = model(minigrad.Tensor(context)).data[:, -1, :]
                nxt = sample_next(logits, temperature, top_k, top_p, generator)
                idx = xp.concatenate([idx, nxt[:, None].astype(idx.dtype)], axis=1)
    finally:
        model.train(was_training)
    return idx
