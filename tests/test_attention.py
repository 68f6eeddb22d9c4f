"""CausalSelfAttention: values against a NumPy reference, causality (forward and backward),
gradients of the whole block, where the attention dropout sits, and argument errors."""

import math

import numpy as np
import pytest
import scipy.special

import minigrad
from layers.activations import Identity
from layers.attention import CausalSelfAttention
from layers.module import Module
from minigrad.random import Generator

N, T, D, H = 2, 4, 8, 2


class FixedMaskDropout(Module):
    """Inverted dropout with a known mask: y = x * mask / keep. Records what it was given."""

    def __init__(self, mask, keep):
        self.mask, self.keep = mask, keep
        self.seen = None

    def forward(self, x):
        self.seen = x
        return x * (self.mask * (1 / self.keep))


class Recorder(Module):
    """Identity that remembers its input."""

    seen = None

    def forward(self, x):
        self.seen = x
        return x


def reference_attention(x, block, attn_mask=None):
    """Causal attention in NumPy, written independently: query t only ever sees keys 0..t.

    Returns the output and the softmax weights (before ``attn_mask`` multiplies them)."""
    w_qkv, b_qkv = block.qkv.weight.numpy(), block.qkv.bias.numpy()
    w_proj, b_proj = block.proj.weight.numpy(), block.proj.bias.numpy()
    n, t, d = x.shape
    h = block.n_heads
    dh = d // h
    q, k, v = np.split(x @ w_qkv.T + b_qkv, 3, axis=-1)                # each (N, T, D)
    q, k, v = (a.reshape(n, t, h, dh).transpose(0, 2, 1, 3) for a in (q, k, v))
    weights = np.zeros((n, h, t, t))
    for i in range(t):
        scores = np.einsum("nhd,nhsd->nhs", q[:, :, i], k[:, :, :i + 1]) / math.sqrt(dh)
        weights[:, :, i, :i + 1] = scipy.special.softmax(scores, axis=-1)
    dropped = weights if attn_mask is None else weights * attn_mask
    out = (dropped @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return out @ w_proj.T + b_proj, weights


def _block(backend, **kwargs):
    return CausalSelfAttention(D, H, device=backend.device, dtype=np.float64,
                               generator=Generator(0), **kwargs)


def _host_block(block):
    """A CPU copy of a block's weights, for the NumPy reference."""
    copy = CausalSelfAttention(D, H, dtype=np.float64)
    copy.load_state_dict(block.state_dict())
    return copy


def test_matches_numpy_reference(backend):
    block = _block(backend)
    x = np.random.default_rng(1).standard_normal((N, T, D))
    y = backend.numpy(block(backend.tensor(x)))
    expected, _ = reference_attention(x, _host_block(block))
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_output_at_t_does_not_change_when_later_inputs_change(backend):
    block = _block(backend)
    x = np.random.default_rng(2).standard_normal((N, T, D))
    y = backend.numpy(block(backend.tensor(x)))
    for t in range(T - 1):
        changed = x.copy()
        changed[:, t + 1:] += np.random.default_rng(t).standard_normal((N, T - t - 1, D))
        y_changed = backend.numpy(block(backend.tensor(changed)))
        np.testing.assert_array_equal(y_changed[:, :t + 1], y[:, :t + 1])
        assert np.all(np.abs(y_changed[:, t + 1:] - y[:, t + 1:]) > 0)


def test_no_gradient_flows_from_position_t_to_later_inputs(backend):
    block = _block(backend)
    for t in range(T):
        x = backend.randn(N, T, D, seed=3, requires_grad=True)
        grad_out = np.zeros((N, T, D))
        grad_out[:, t] = 1.0
        block(x).backward(backend.array(grad_out))
        grad = backend.numpy(x.grad)
        assert np.all(grad[:, t + 1:] == 0)        # exactly zero, not merely small
        assert np.all(np.abs(grad[:, :t + 1]).sum(axis=-1) > 0)


def test_whole_block_gradient_matches_finite_difference(backend):
    block = _block(backend)
    x = backend.randn(N, T, D, seed=4, requires_grad=True)
    assert minigrad.gradcheck(lambda x, *params: block(x), [x] + block.parameters())


def test_attention_dropout_gets_the_softmax_weights_and_its_output_feeds_values(backend):
    keep = 0.75
    mask = (np.random.default_rng(5).random((N, H, T, T)) < keep).astype(np.float64)
    dropout = FixedMaskDropout(backend.array(mask), keep)
    block = _block(backend, attn_dropout=dropout)
    x = np.random.default_rng(6).standard_normal((N, T, D))
    y = backend.numpy(block(backend.tensor(x)))
    expected, weights = reference_attention(x, _host_block(block), attn_mask=mask / keep)
    # what the dropout saw is the softmax output: causal, rows summing to 1
    np.testing.assert_allclose(backend.numpy(dropout.seen), weights, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.numpy(dropout.seen).sum(axis=-1), 1, rtol=1e-12)
    assert np.all(np.triu(backend.numpy(dropout.seen), k=1) == 0)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_gradient_through_attention_dropout_matches_finite_difference(backend):
    mask = (np.random.default_rng(7).random((N, H, T, T)) < 0.5).astype(np.float64)
    block = _block(backend, attn_dropout=FixedMaskDropout(backend.array(mask), 0.5))
    x = backend.randn(N, T, D, seed=8, requires_grad=True)
    assert minigrad.gradcheck(lambda x, *params: block(x), [x] + block.parameters())


def test_residual_dropout_gets_the_output_projection(backend):
    recorder = Recorder()
    block = _block(backend, resid_dropout=recorder)
    x = backend.randn(N, T, D, seed=9)
    y = block(x)
    assert recorder.seen is y
    assert recorder.seen.creator is not None
    assert type(recorder.seen.creator).__name__ == "Linear"


def test_identity_dropouts_change_nothing(backend):
    x = backend.randn(N, T, D, seed=10)
    plain = backend.numpy(_block(backend)(x))
    with_identity = _block(backend, attn_dropout=Identity(), resid_dropout=Identity())
    np.testing.assert_array_equal(backend.numpy(with_identity(x)), plain)


def test_train_and_eval_reach_the_dropout_modules():
    attn, resid = Identity(), Identity()
    block = CausalSelfAttention(D, H, attn_dropout=attn, resid_dropout=resid)
    block.eval()
    assert not attn.training and not resid.training
    block.train()
    assert attn.training and resid.training


def test_float32_in_float32_out(backend):
    block = CausalSelfAttention(D, H, device=backend.device)
    x = backend.randn(N, T, D, dtype=np.float32, requires_grad=True)
    y = block(x)
    y.backward(backend.xp.ones(y.shape, dtype=np.float32))
    assert y.dtype == x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in block.parameters())


def test_without_bias_has_only_the_two_weight_matrices():
    block = CausalSelfAttention(D, H, bias=False)
    assert [p.shape for p in block.parameters()] == [(3 * D, D), (D, D)]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"n_heads \(3\) must be positive and divide"):
        CausalSelfAttention(8, 3)
    with pytest.raises(TypeError, match="attn_dropout must be a Module"):
        CausalSelfAttention(8, 2, attn_dropout=0.1)
    with pytest.raises(ValueError, match=r"expected input \(N, T, 8\)"):
        CausalSelfAttention(8, 2)(minigrad.Tensor(np.zeros((2, 4, 6), dtype=np.float32)))
