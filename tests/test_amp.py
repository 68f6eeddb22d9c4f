"""Dropout in low precision, and MixedPrecision (float32 masters, dynamic loss scaling).

Dropout masks are drawn from 32-bit integers whatever the input dtype, so in float16 (and
bfloat16) p = 0 drops nothing, the keep count is Binomial(n, 1 - p), and only the kept values
are rounded. MixedPrecision keeps float16 weights in the model and float32 masters in the
optimizer, skips steps whose gradients overflow and adapts its loss scale.
"""

import sys

import numpy as np
import pytest
from scipy import stats

import layers
import minigrad
import test_examples
from conftest import Backend
from layers.module import Module
from minigrad import functional as F
from minigrad import optim
from minigrad import random as mrandom
from minigrad.amp import MixedPrecision, bfloat16, low_precision_dtype
from minigrad.checkpoint import load_checkpoint, save_checkpoint
from minigrad.ops.dropout import dropout

P_VALUE_FLOOR = 1e-3   # a correct mask fails a binomial test this rarely (seeds are fixed)
# float16 gradients that overflow (and the steps skipped for them) are part of these tests
overflow_expected = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def nonzero_float16(backend, n, seed=0):
    """n float16 values in [0.5, 2) with random signs: none is 0, none overflows when scaled."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.5, 2.0, n) * rng.choice([-1.0, 1.0], n)
    return backend.tensor(values.astype(np.float16), requires_grad=True)


def test_p0_never_drops_an_element_in_float16(backend):
    x = nonzero_float16(backend, 1 << 16)
    y = dropout(x, 0.0, generator=minigrad.Generator(1))
    layer_y = layers.Dropout(0.0, generator=minigrad.Generator(2))(x)
    for out in (y, layer_y):
        assert out.dtype == np.float16
        assert np.array_equal(backend.numpy(out), backend.numpy(x))


def test_p0_never_drops_an_element_in_bfloat16():
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    x = np.random.default_rng(0).uniform(0.5, 2.0, 1 << 16).astype(bf16)
    y = mrandom.masked_scale(np, x, 1.0, 1.0, mrandom.Generator(1))
    assert y.dtype == bf16
    assert np.array_equal(y.astype(np.float32), x.astype(np.float32))
    u = mrandom.uniform(np, (1 << 16,), mrandom.Generator(2), dtype=bf16)
    assert u.dtype == np.float32 and float(u.max()) < 1.0   # never rounded up to 1


def test_bfloat16_dropout_keeps_dtype_count_and_exact_kept_values():
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    n, keep = 200_000, 0.5
    x = np.random.default_rng(1).uniform(0.5, 2.0, n).astype(bf16)
    y = mrandom.masked_scale(np, x, keep, 1 / keep, mrandom.Generator(3))
    assert y.dtype == bf16
    y32, x32 = y.astype(np.float32), x.astype(np.float32)
    kept = y32 != 0
    assert np.array_equal(y32[kept], 2 * x32[kept])   # scale 2 is exact in bfloat16
    assert stats.binomtest(int(kept.sum()), n, keep).pvalue > P_VALUE_FLOOR


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_float16_keep_count_is_binomial(backend, p):
    n = 200_000
    x = nonzero_float16(backend, n, seed=3)
    y = dropout(x, p, generator=minigrad.Generator(4))
    kept = int((backend.numpy(y) != 0).sum())
    assert stats.binomtest(kept, n, 1 - p).pvalue > P_VALUE_FLOOR


@pytest.mark.parametrize("p", [0.2, 0.5, 0.75])
def test_float16_kept_values_are_x_over_keep_rounded_once(backend, p):
    # 1/(1-p) is exact in float16 here, so x * scale is rounded once: float16(x / (1 - p))
    x = nonzero_float16(backend, 4096, seed=5)
    g = nonzero_float16(backend, 4096, seed=6)
    y = dropout(x, p, generator=minigrad.Generator(7))
    y.backward(g.data)
    y_np, x64 = backend.numpy(y), backend.numpy(x).astype(np.float64)
    kept = y_np != 0
    assert y.dtype == np.float16 and x.grad.dtype == np.float16
    assert np.array_equal(y_np[kept], (x64[kept] / (1 - p)).astype(np.float16))
    grad_expected = np.where(kept, backend.numpy(g).astype(np.float64) / (1 - p), 0)
    assert np.array_equal(backend.numpy(x.grad), grad_expected.astype(np.float16))


def test_float16_kept_values_are_within_one_rounding_for_inexact_scales(backend):
    p = 0.1   # 1/0.9 is not a float16 number: x * float16(1/0.9) may differ by one step
    x = nonzero_float16(backend, 4096, seed=8)
    y_np = backend.numpy(dropout(x, p, generator=minigrad.Generator(9)))
    kept = y_np != 0
    exact = backend.numpy(x).astype(np.float64)[kept] / (1 - p)
    step = np.spacing(np.abs(exact).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(y_np[kept] - exact) <= step)


class InjectGradient(minigrad.Function):
    """Identity forward; backward sends ``value`` (inf or nan) everywhere: an overflow."""

    def __init__(self, value):
        self.value = value

    def forward(self, x):
        return x

    def backward(self, grad_out):
        return self.xp.full(grad_out.shape, self.value, dtype=grad_out.dtype)


class SmallMLP(Module):
    """8 -> 32 -> ReLU -> Dropout(p) -> 3."""

    def __init__(self, generator, p=0.2):
        self.body = layers.Sequential(
            layers.Linear(8, 32, generator=generator), layers.ReLU(),
            layers.Dropout(p, generator=generator), layers.Linear(32, 3, generator=generator))

    def forward(self, x):
        return self.body(x)


def blobs(backend, n=96, seed=0):
    """Three separable classes in 8 dimensions, as float16 inputs and int labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 8)) * 0.5
    x[np.arange(n), labels] += 2.0
    return backend.tensor(x.astype(np.float16)), backend.tensor(labels)


def wrapped(backend=None, seed=0, lr=0.1, **kwargs):
    model = SmallMLP(minigrad.Generator(seed))
    if backend is not None:
        model.to(backend.device)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, optimizer, MixedPrecision(model, optimizer, **kwargs)


def loss_of(model, x, y, inject=None):
    logits = model(x)
    if inject is not None:
        logits = InjectGradient(inject)(logits)
    return F.cross_entropy(logits.astype(np.float32), y)


def test_mixed_precision_training_decreases_the_loss(backend):
    model, _, amp = wrapped(backend)
    x, y = blobs(backend)
    losses = []
    for _ in range(40):
        loss = loss_of(model, x, y)
        amp.step(loss)
        losses.append(float(loss.data))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert amp.skipped_steps < 10


def test_masters_are_float32_and_model_weights_float16(backend):
    model, optimizer, amp = wrapped(backend)
    x, y = blobs(backend)
    amp.step(loss_of(model, x, y))
    assert [p.dtype for p in model.parameters()] == [np.float16] * 4
    assert [m.dtype for m in amp.master_params] == [np.float32] * 4
    assert optimizer.params == amp.master_params
    assert all(s["momentum_buffer"].dtype == np.float32 for s in optimizer.state)
    for p, m in zip(model.parameters(), amp.master_params):
        assert np.array_equal(backend.numpy(p), backend.numpy(m).astype(np.float16))
        assert p.device == m.device == backend.device


def test_masters_keep_updates_that_float16_weights_would_round_away(backend):
    model, _, amp = wrapped(backend, lr=1e-4)
    x, y = blobs(backend)
    before = [backend.numpy(m).copy() for m in amp.master_params]
    for _ in range(3):
        amp.step(loss_of(model, x, y))
    moved = lost_in_float16 = 0
    for m, b in zip(amp.master_params, before):
        after = backend.numpy(m)
        changed = after != b
        moved += changed.sum()
        lost_in_float16 += (changed & (after.astype(np.float16) == b.astype(np.float16))).sum()
    # most updates are smaller than float16's spacing: only the float32 masters keep them
    assert moved > 0 and lost_in_float16 > 0.5 * moved


@overflow_expected
@pytest.mark.parametrize("value", [np.inf, np.nan])
def test_overflowing_gradient_skips_the_step_and_halves_the_scale(backend, value):
    model, optimizer, amp = wrapped(backend, init_scale=1024.0)
    x, y = blobs(backend)
    amp.step(loss_of(model, x, y))
    masters = [backend.numpy(m).copy() for m in amp.master_params]
    weights = [backend.numpy(p).copy() for p in model.parameters()]
    buffers = [backend.numpy(s["momentum_buffer"]).copy() for s in optimizer.state]
    assert amp.step(loss_of(model, x, y, inject=value)) is False
    assert (amp.scale, amp.skipped_steps, amp.good_steps, amp.steps) == (512.0, 1, 0, 2)
    for before, m in zip(masters, amp.master_params):
        assert np.array_equal(before, backend.numpy(m))
    for before, p in zip(weights, model.parameters()):
        assert np.array_equal(before, backend.numpy(p))
    for before, s in zip(buffers, optimizer.state):
        assert np.array_equal(before, backend.numpy(s["momentum_buffer"]))
    assert amp.step(loss_of(model, x, y)) is True
    assert not np.array_equal(masters[0], backend.numpy(amp.master_params[0]))


@overflow_expected
def test_scale_grows_after_growth_interval_good_steps(backend):
    model, _, amp = wrapped(backend, init_scale=8.0, growth_interval=3)
    x, y = blobs(backend)
    scales = []
    for _ in range(7):
        amp.step(loss_of(model, x, y))
        scales.append(amp.scale)
    assert scales == [8.0, 8.0, 16.0, 16.0, 16.0, 32.0, 32.0]
    amp.step(loss_of(model, x, y, inject=np.inf))
    assert (amp.scale, amp.good_steps) == (16.0, 0)


def test_loss_scaling_rescues_gradients_that_underflow_float16(backend):
    # d loss / d logits = 1e-8 / N, below float16's smallest subnormal 2**-24 ~ 6e-8
    grads = {}
    for scale in (1.0, 2.0 ** 15):
        model, _, amp = wrapped(backend, init_scale=scale)
        model.eval()
        x, _ = blobs(backend, n=4)
        amp.step(model(x).astype(np.float32).mean() * 1e-8)
        grads[scale] = backend.numpy(amp.master_params[-1].grad)   # the last bias
    assert np.all(grads[1.0] == 0)
    assert np.allclose(grads[2.0 ** 15], 1e-8 / 3, rtol=1e-2)


@overflow_expected
def test_state_dict_round_trip_through_a_checkpoint(backend, tmp_path):
    model, optimizer, amp = wrapped(backend, init_scale=64.0, growth_interval=2)
    x, y = blobs(backend)
    for inject in (None, None, np.inf, None):
        amp.step(loss_of(model, x, y, inject))
    path = save_checkpoint(str(tmp_path / "amp.npz"), amp=amp.state_dict(),
                           optimizer=optimizer.state_dict())
    state = load_checkpoint(path)
    model2, optimizer2, amp2 = wrapped(backend, seed=1)
    optimizer2.load_state_dict(state["optimizer"])
    amp2.load_state_dict(state["amp"])
    assert (amp2.scale, amp2.good_steps, amp2.steps, amp2.skipped_steps) == (
        amp.scale, amp.good_steps, amp.steps, amp.skipped_steps)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert np.array_equal(backend.numpy(a), backend.numpy(b))
    model.eval()
    model2.eval()
    amp.step(loss_of(model, x, y))
    amp2.step(loss_of(model2, x, y))
    for a, b in zip(amp.master_params, amp2.master_params):
        assert np.array_equal(backend.numpy(a), backend.numpy(b))


def test_load_state_dict_rejects_another_model():
    _, _, amp = wrapped()
    other = layers.Linear(8, 3)
    other_amp = MixedPrecision(other, optim.SGD(other.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="2 master weights, this model 4"):
        amp.load_state_dict(other_amp.state_dict())


def test_bad_arguments_are_rejected_with_a_clear_message():
    model = SmallMLP(minigrad.Generator(0))
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        MixedPrecision(model, optimizer, dtype=np.float32)
    with pytest.raises(ValueError, match="backoff_factor"):
        MixedPrecision(model, optimizer, backoff_factor=1.5)
    with pytest.raises(ValueError, match="growth_factor"):
        MixedPrecision(model, optimizer, growth_factor=1.0)
    with pytest.raises(ValueError, match="growth_interval"):
        MixedPrecision(model, optimizer, growth_interval=0)
    other = SmallMLP(minigrad.Generator(1))
    with pytest.raises(ValueError, match="not a parameter of the model"):
        MixedPrecision(model, optim.SGD(other.parameters(), lr=0.1))
    amp = MixedPrecision(model, optimizer)
    with pytest.raises(ValueError, match="wrap each optimizer only once"):
        MixedPrecision(model, optimizer)
    x, _ = blobs(Backend("numpy"))
    with pytest.raises(ValueError, match="one-element Tensor"):
        amp.step(model(x))


def test_bfloat16_without_ml_dtypes_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(ImportError, match="pip install ml_dtypes"):
        bfloat16()
    with pytest.raises(ImportError, match="pip install ml_dtypes"):
        low_precision_dtype("bfloat16")


def test_bfloat16_mixed_precision_trains():
    bf16 = pytest.importorskip("ml_dtypes").bfloat16
    model, _, amp = wrapped(dtype="bfloat16")
    x, y = blobs(Backend("numpy"))
    x = minigrad.Tensor(x.data.astype(np.float32))   # NumPy computes bfloat16 in float32
    losses = []
    for _ in range(30):
        loss = loss_of(model, x, y)
        amp.step(loss)
        losses.append(float(loss.data))
    assert [p.dtype for p in model.parameters()] == [np.dtype(bf16)] * 4
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def run_example(data_dir, out, *extra):
    return test_examples.mnist_mlp.main(test_examples._args(data_dir, out, *extra))


def test_example_float16_trains_and_reports_the_loss_scale(data_dir, tmp_path):
    history = run_example(data_dir, tmp_path / "f16", "--epochs", "6", "--dtype", "float16")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.5        # chance is 0.1
    assert all(h["loss_scale"] > 0 and h["skipped_steps"] >= 0 for h in history)
    state = load_checkpoint(str(tmp_path / "f16" / "checkpoint.npz"))
    assert {v.dtype for v in state["model"].values()} == {np.dtype(np.float16)}
    assert {m.dtype for m in state["amp"]["masters"]} == {np.dtype(np.float32)}


def test_example_float16_resume_is_bit_identical(data_dir, tmp_path):
    run_example(data_dir, tmp_path / "full", "--epochs", "3", "--dtype", "float16")
    run_example(data_dir, tmp_path / "cut", "--epochs", "2", "--dtype", "float16")
    run_example(data_dir, tmp_path / "cut", "--epochs", "3", "--dtype", "float16", "--resume")
    full, cut = (load_checkpoint(str(tmp_path / d / "checkpoint.npz")) for d in ("full", "cut"))
    test_examples._assert_same_weights(full["model"], cut["model"])
    for a, b in zip(full["amp"]["masters"], cut["amp"]["masters"]):
        assert np.array_equal(a, b)
    assert full["amp"]["scale"] == cut["amp"]["scale"]


def test_example_refuses_to_resume_with_another_dtype(data_dir, tmp_path):
    run_example(data_dir, tmp_path / "run", "--epochs", "1", "--dtype", "float16")
    with pytest.raises(SystemExit, match="resume it with --dtype float16"):
        run_example(data_dir, tmp_path / "run", "--epochs", "2", "--resume")


@overflow_expected
def test_example_max_norm_constrains_the_float32_masters(data_dir, tmp_path):
    run_example(data_dir, tmp_path / "mn", "--epochs", "2", "--dtype", "float16",
                "--max-norm", "0.5", "--lr", "0.5")
    state = load_checkpoint(str(tmp_path / "mn" / "checkpoint.npz"))
    weights = [m for m in state["amp"]["masters"] if m.ndim == 2]
    assert len(weights) == 2
    for w in weights:
        assert np.sqrt((w.astype(np.float64) ** 2).sum(axis=1)).max() <= 0.5 * (1 + 1e-6)
    for name, value in state["model"].items():
        assert value.dtype == np.float16, name


def test_example_bfloat16_without_ml_dtypes_says_how_to_install(data_dir, tmp_path,
                                                                monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.raises(SystemExit, match="pip install ml_dtypes"):
        run_example(data_dir, tmp_path / "bf16", "--epochs", "1", "--dtype", "bfloat16")


def test_example_bfloat16_trains(data_dir, tmp_path):
    pytest.importorskip("ml_dtypes")
    history = run_example(data_dir, tmp_path / "bf16", "--epochs", "4", "--dtype", "bfloat16")
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    state = load_checkpoint(str(tmp_path / "bf16" / "checkpoint.npz"))
    assert state["amp"]["dtype"] == "bfloat16"


def test_example_bfloat16_resume_is_bit_identical(data_dir, tmp_path):
    pytest.importorskip("ml_dtypes")
    args = ("--dtype", "bfloat16")
    run_example(data_dir, tmp_path / "full", "--epochs", "3", *args)
    run_example(data_dir, tmp_path / "cut", "--epochs", "2", *args)
    run_example(data_dir, tmp_path / "cut", "--epochs", "3", *args, "--resume")
    full, cut = (load_checkpoint(str(tmp_path / d / "checkpoint.npz")) for d in ("full", "cut"))
    test_examples._assert_same_weights(full["model"], cut["model"])
    for a, b in zip(full["amp"]["masters"], cut["amp"]["masters"]):
        assert np.array_equal(a, b)
