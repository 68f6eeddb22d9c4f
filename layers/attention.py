"""Causal multi-head self-attention (GPT style), with attention and residual dropout slots."""

import math

import numpy as np

from layers.linear import Linear
from layers.module import Module
from minigrad import ops
from minigrad.backend import get_xp


class CausalSelfAttention(Module):
    """Multi-head self-attention in which position t attends to positions 0..t only.

    For x (N, T, D), H heads of size Dh = D / H:

        q, k, v = split(x @ W_qkv^T + b_qkv)               each (N, H, T, Dh)
        scores  = q @ k^T / sqrt(Dh)                          (N, H, T, T)
        scores[..., t, s] = -inf  where s > t                 causal mask
        weights = softmax(scores, axis=-1)                    each row sums to 1
        weights = attn_dropout(weights)                       drops single connections t -> s
        out     = merge_heads(weights @ v) @ W_proj^T + b_proj   (N, T, D)
        out     = resid_dropout(out)

    The mask is applied with ``where(mask, scores, -inf)`` rather than by adding a -1e9
    constant. Masked scores become exactly -inf, so their softmax weights are exactly 0 and
    ``where`` routes exactly zero gradient to them, in any dtype. An additive -1e9 only gives
    a weight of exp(-1e9 - max), which is 0 through float underflow; and -1e9 is not even
    representable in float16. Every row keeps its diagonal, so no row is all -inf.

    Attention dropout acts on the attention weights right after the softmax: it removes
    individual (query, key) connections of one head, and its scale keeps each row's expected
    sum at 1. The backward is derived in docs/attention_dropout.md.

    Args:
        d_model:    D, the size of each token vector.
        n_heads:    H; must divide d_model.
        attn_dropout: a Module applied to the (N, H, T, T) attention weights (a dropout
                    layer), or None for none.
        resid_dropout: a Module applied to the output (N, T, D), or None for none.
        bias:       learn biases in the two projections (default True).
        device, dtype, generator: as for Linear (the projections' initial weights).

    Both dropout Modules are children of this one, so ``train()``/``eval()`` reach them.

    Reference: Vaswani et al., "Attention Is All You Need" (2017),
    https://arxiv.org/abs/1706.03762; Radford et al., "Language Models are Unsupervised
    Multitask Learners" (GPT-2, 2019), for the causal decoder block.
    """

    def __init__(self, d_model, n_heads, attn_dropout=None, resid_dropout=None, bias=True,
                 device="cpu", dtype=np.float32, generator=None):
        if n_heads <= 0 or d_model <= 0 or d_model % n_heads:
            raise ValueError(f"CausalSelfAttention: n_heads ({n_heads}) must be positive and "
                             f"divide d_model ({d_model})")
        for name, module in (("attn_dropout", attn_dropout), ("resid_dropout", resid_dropout)):
            if module is not None and not isinstance(module, Module):
                raise TypeError(f"CausalSelfAttention: {name} must be a Module (e.g. "
                                f"layers.Dropout(p)) or None, got {type(module).__name__}")
        self.d_model, self.n_heads = d_model, n_heads
        self.qkv = Linear(d_model, 3 * d_model, bias, device, dtype, generator)
        self.proj = Linear(d_model, d_model, bias, device, dtype, generator)
        self.attn_dropout = attn_dropout
        self.resid_dropout = resid_dropout

    def forward(self, x):
        if x.ndim != 3 or x.shape[2] != self.d_model:
            raise ValueError(f"CausalSelfAttention: expected input (N, T, {self.d_model}), got "
                             f"shape {x.shape}")
        n, t, d = x.shape
        h = self.n_heads
        # (N, T, 3D) -> (N, T, 3, H, Dh) -> (3, N, H, T, Dh)
        qkv = self.qkv(x).reshape(n, t, 3, h, d // h).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                        # each (N, H, T, Dh)
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1 / math.sqrt(d // h))   # (N, H, T, T)
        scores = ops.where(self.causal_mask(get_xp(x.data), t), scores, -math.inf)
        weights = ops.softmax(scores, axis=-1)
        if self.attn_dropout is not None:
            weights = self.attn_dropout(weights)
        out = weights @ v                                       # (N, H, T, Dh)
        # (N, H, T, Dh) -> (N, T, H, Dh) -> (N, T, D): heads side by side again
        out = self.proj(out.transpose(0, 2, 1, 3).reshape(n, t, d))
        if self.resid_dropout is not None:
            out = self.resid_dropout(out)
        return out

    @staticmethod
    def causal_mask(xp, t):
        """(T, T) bool, True where query t may see key s, i.e. s <= t (lower triangle)."""
        return xp.tri(t, t, dtype=bool)

    def extra_repr(self):
        return f"d_model={self.d_model}, n_heads={self.n_heads}"
