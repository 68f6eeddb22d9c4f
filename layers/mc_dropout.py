"""Monte Carlo dropout: keep dropout on at inference and average T stochastic passes.

A network trained with dropout is an ensemble of thinned sub-networks. Evaluation mode uses
their (approximate) average; MC dropout instead samples T of them by leaving every
dropout-family layer in training mode, and reads the spread of their predictions as the
model's uncertainty. Every other layer (batch norm, for instance) stays in evaluation mode.

    with mc_dropout(model):               # dropout stochastic, everything else eval
        logits = model(x)
    pred = mc_dropout_predict(model, x, T=50)
    pred.mean, pred.variance, pred.entropy, pred.mutual_information

Reference: Gal & Ghahramani, "Dropout as a Bayesian Approximation: Representing Model
Uncertainty in Deep Learning", ICML 2016. https://arxiv.org/abs/1506.02142
"""

import contextlib
from typing import Any, NamedTuple

from layers.dropout import DropoutLayer
from minigrad.autograd import no_grad
from minigrad.backend import get_xp
from minigrad.ops.loss import softmax


class MCPrediction(NamedTuple):
    """The summary of T stochastic passes (backend arrays; N inputs, C classes).

    mean:               (N, C) predictive mean of the softmax probabilities
    variance:           (N, C) variance of each class probability over the T passes
    entropy:            (N,) predictive entropy H[mean] = -sum_c mean_c log mean_c, in nats,
                        within [0, log C]
    mutual_information: (N,) H[mean] - mean over passes of H[probs_t]: the part of the
                        entropy that comes from disagreement between passes (model
                        uncertainty, as in BALD); >= 0 up to rounding
    """

    mean: Any
    variance: Any
    entropy: Any
    mutual_information: Any


def dropout_layers(model):
    """Every dropout-family layer in ``model`` (itself included)."""
    return [m for m in model.modules() if isinstance(m, DropoutLayer)]


@contextlib.contextmanager
def mc_dropout(model):
    """Context in which ``model``'s dropout-family layers are stochastic and all else is eval.

    On exit every module gets back the ``training`` flag it had on entry, even after an
    exception.
    """
    stochastic = dropout_layers(model)
    if not stochastic:
        raise ValueError(f"MC dropout needs dropout in the model, but {type(model).__name__} "
                         f"has no dropout-family layer: every pass would give the same output")
    previous = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        for layer in stochastic:
            layer.training = True
        yield model
    finally:
        for m, mode in previous:
            m.training = mode


def predictive_entropy(xp, probs):
    """-sum p log p over the last axis, in nats, with 0 log 0 taken as 0."""
    tiny = float(xp.finfo(probs.dtype).tiny)
    return -(probs * xp.log(xp.maximum(probs, tiny))).sum(axis=-1)


def mc_dropout_predict(model, x, T=20):
    """Run ``model`` T times on ``x`` with dropout on; summarise the softmax outputs.

    Args:
        model:  a Module that maps x to logits of shape (N, C) (softmax over the last axis).
        x:      the input Tensor.
        T:      number of stochastic passes (T >= 2 for a meaningful variance).

    Returns an MCPrediction (mean, variance, entropy, mutual_information). The passes draw
    their masks from each layer's generator, so seeding those makes the result repeatable.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int (the number of stochastic passes), got {T!r}")
    with no_grad(), mc_dropout(model):
        passes = [softmax(model(x), axis=-1).data for _ in range(T)]
    xp = get_xp(passes[0])
    probs = xp.stack(passes)   # (T, N, C)
    mean = probs.mean(axis=0)
    entropy = predictive_entropy(xp, mean)
    expected_entropy = predictive_entropy(xp, probs).mean(axis=0)
    return MCPrediction(mean, probs.var(axis=0), entropy, entropy - expected_entropy)
