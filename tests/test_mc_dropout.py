"""MC dropout: dropout stays stochastic at inference, every other layer stays in eval."""

import math

import numpy as np
import pytest

import minigrad
from layers import Linear, Module, ReLU, Sequential
from layers.dropout import Dropout, DropPath
from layers.dropout_noise import AlphaDropout, GaussianDropout
from layers.dropout_structured import DropBlock2d, DropConnectLinear
from layers.mc_dropout import dropout_layers, mc_dropout, mc_dropout_predict
from minigrad import random

CLASSES = 5


class ShiftInTraining(Module):
    """Adds 100 in training mode, nothing in eval mode; records the mode of each call."""

    def __init__(self):
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        return x + 100.0 if self.training else x


def _model(p=0.5, seed=0):
    gen = random.Generator(seed)
    return Sequential(Linear(6, 32, generator=gen), ReLU(), Dropout(p, generator=gen),
                      ShiftInTraining(), Linear(32, CLASSES, generator=gen))


def _x(backend=None, n=4):
    values = np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)
    return minigrad.Tensor(values) if backend is None else backend.tensor(values)


def test_mc_dropout_keeps_dropout_on_and_other_layers_in_eval():
    model = _model()
    probe, drop = model[3], model[2]
    with mc_dropout(model):
        assert drop.training
        assert not probe.training and not model.training and not model[0].training
        first, second = model(_x()).numpy(), model(_x()).numpy()
    assert not np.array_equal(first, second)
    assert probe.seen == [False, False]


@pytest.mark.parametrize("mode", ["train", "eval", "mixed"])
def test_mc_dropout_restores_previous_modes(mode):
    model = _model()
    if mode == "eval":
        model.eval()
    elif mode == "mixed":
        model.eval()
        model[3].training = True
    before = [m.training for m in model.modules()]
    with mc_dropout(model):
        pass
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError, match="inside"):
        with mc_dropout(model):
            raise RuntimeError("inside")
    assert [m.training for m in model.modules()] == before
    mc_dropout_predict(model, _x(), T=3)
    assert [m.training for m in model.modules()] == before


def test_predict_shapes_and_ranges(backend):
    model = _model().to(backend.device)
    model.train()
    pred = mc_dropout_predict(model, _x(backend, n=7), T=30)
    mean, var = backend.numpy(pred.mean), backend.numpy(pred.variance)
    entropy, info = backend.numpy(pred.entropy), backend.numpy(pred.mutual_information)
    assert mean.shape == var.shape == (7, CLASSES)
    assert entropy.shape == info.shape == (7,)
    np.testing.assert_allclose(mean.sum(axis=1), 1, rtol=1e-5)
    assert np.all(var >= 0) and np.any(var > 0)
    assert np.all(entropy >= -1e-6) and np.all(entropy <= math.log(CLASSES) + 1e-5)
    assert np.all(info >= -1e-6) and np.all(info <= entropy + 1e-6)
    assert model[3].seen == [False] * 30   # the probe never ran in training mode


def _reference(model, x, T):
    """The same passes by hand, in float64 NumPy."""
    with minigrad.no_grad(), mc_dropout(model):
        logits = np.stack([model(x).numpy().astype(np.float64) for _ in range(T)])
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    mean = probs.mean(axis=0)
    entropy = -(mean * np.log(mean)).sum(axis=-1)
    expected = -(probs * np.log(probs)).sum(axis=-1).mean(axis=0)
    return mean, probs.var(axis=0), entropy, entropy - expected


def test_predict_matches_average_of_passes_by_hand():
    T = 25
    model = _model(seed=1)
    state = model[2].generator.get_state()
    pred = mc_dropout_predict(model, _x(), T=T)
    model[2].generator.set_state(state)   # replay the same masks
    for got, want in zip(pred, _reference(model, _x(), T)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_without_dropout_noise_the_passes_agree():
    model = _model(p=0.0)
    pred = mc_dropout_predict(model, _x(), T=5)
    np.testing.assert_allclose(pred.variance, 0, atol=1e-12)
    np.testing.assert_allclose(pred.mutual_information, 0, atol=1e-5)
    model.eval()
    eval_probs = minigrad.ops.softmax(model(_x())).numpy()
    np.testing.assert_allclose(pred.mean, eval_probs, rtol=1e-5)


def test_every_family_member_counts_as_dropout():
    model = Sequential(DropConnectLinear(4, 4), Dropout(), DropPath(), GaussianDropout(),
                       AlphaDropout(), DropBlock2d(block_size=1), ReLU())
    assert len(dropout_layers(model)) == 6
    with mc_dropout(model):
        assert [m.training for m in model.layers] == [True] * 6 + [False]


def test_model_without_dropout_raises():
    with pytest.raises(ValueError, match="no dropout-family layer"):
        mc_dropout_predict(Sequential(Linear(6, 3)), _x(), T=4)


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
def test_bad_number_of_passes_raises(T):
    with pytest.raises(ValueError, match="T must be a positive int"):
        mc_dropout_predict(_model(), _x(), T=T)
