"""Normalisations and losses: softmax, log_softmax, logsumexp, cross_entropy, mse_loss.

All of them subtract the maximum before exponentiating: exp overflows float32 above ~88.
"""

from minigrad.autograd import Function, constant_array


def _stable_max(xp, x, axis):
    """max over axis (keepdims), with rows that are all -inf given 0 so that x - m stays finite."""
    m = x.max(axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, 0)


class Softmax(Function):
    """Softmax along one axis.

    Forward:  y_i = exp(x_i - max x) / sum_j exp(x_j - max x)
    Backward: grad_x = y * (grad_out - sum(grad_out * y, axis))
              (the Jacobian diag(y) - y y^T applied to grad_out, without forming it)
    Saves:    y
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        e = self.xp.exp(x - _stable_max(self.xp, x, self.axis))
        self.y = e / e.sum(axis=self.axis, keepdims=True)
        return self.y

    def backward(self, grad_out):
        y = self.y
        return y * (grad_out - (grad_out * y).sum(axis=self.axis, keepdims=True))


def softmax(x, axis=-1):
    return Softmax(axis)(x)


class LogSoftmax(Function):
    """Log of the softmax along one axis, computed without forming the softmax.

    Forward:  y = x - logsumexp(x, axis)
    Backward: grad_x = grad_out - softmax(x) * sum(grad_out, axis)
    Saves:    softmax(x) = exp(y)
    """

    def __init__(self, axis=-1):
        self.axis = axis

    def forward(self, x):
        z = x - _stable_max(self.xp, x, self.axis)
        y = z - self.xp.log(self.xp.exp(z).sum(axis=self.axis, keepdims=True))
        self.softmax = self.xp.exp(y)
        return y

    def backward(self, grad_out):
        return grad_out - self.softmax * grad_out.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=-1):
    return LogSoftmax(axis)(x)


class LogSumExp(Function):
    """log(sum(exp(x))) along an axis, stable for large inputs.

    Forward:  y = m + log(sum exp(x - m)),  m = max x    (exact for any m; this m avoids overflow)
    Backward: grad_x = grad_out * softmax(x)
    Saves:    softmax(x)
    """

    def __init__(self, axis=-1, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp = self.xp
        m = _stable_max(xp, x, self.axis)
        e = xp.exp(x - m)
        s = e.sum(axis=self.axis, keepdims=True)
        self.softmax = e / s
        y = xp.log(s) + m
        return y if self.keepdims else y.squeeze(axis=self.axis)

    def backward(self, grad_out):
        if not self.keepdims:
            grad_out = self.xp.expand_dims(grad_out, self.axis)
        return grad_out * self.softmax


def logsumexp(x, axis=-1, keepdims=False):
    return LogSumExp(axis, keepdims)(x)


_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


class CrossEntropy(Function):
    """Cross-entropy between logits and integer class labels (softmax and NLL fused).

    Forward:  loss_n = logsumexp(z_n) - z_n[t_n]      z: logits (..., C), t: labels (...)
              reduced by mean (over all n), sum, or none
    Backward: grad_z = (softmax(z) - onehot(t)) * grad_out_n   (/ N for mean)
              Fusing keeps this exact for logits of 1e4, where softmax underflows to 0.
    Saves:    softmax(z) and the labels
    """

    def __init__(self, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def forward(self, logits, labels):
        xp = self.xp
        if labels.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: labels must be integers, got dtype {labels.dtype}")
        if labels.shape != logits.shape[:-1]:
            raise ValueError(
                f"cross_entropy: labels of shape {labels.shape} do not match logits of shape "
                f"{logits.shape}; expected labels of shape {logits.shape[:-1]}")
        n_classes = logits.shape[-1]
        if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
            raise ValueError(
                f"cross_entropy: labels must lie in [0, {n_classes}), found values from "
                f"{int(labels.min())} to {int(labels.max())}")
        z = logits.reshape(-1, n_classes)        # (..., C) -> (N, C)
        self.labels = labels.reshape(-1)
        self.rows = xp.arange(z.shape[0])
        z = z - z.max(axis=1, keepdims=True)
        log_norm = xp.log(xp.exp(z).sum(axis=1))
        self.softmax = xp.exp(z - log_norm[:, None])
        self.logits_shape = logits.shape
        loss = log_norm - z[self.rows, self.labels]
        if self.reduction == "mean":
            return loss.sum() / loss.shape[0]
        if self.reduction == "sum":
            return loss.sum()
        return loss.reshape(labels.shape)

    def backward(self, grad_out):
        grad = self.softmax.copy()
        grad[self.rows, self.labels] -= 1
        if self.reduction == "none":
            grad *= grad_out.reshape(-1, 1)
        else:
            grad *= grad_out / grad.shape[0] if self.reduction == "mean" else grad_out
        return grad.reshape(self.logits_shape), None


def cross_entropy(logits, labels, reduction="mean"):
    return CrossEntropy(reduction)(logits, constant_array(labels))


class MSELoss(Function):
    """Mean squared error.

    Forward:  loss = mean((pred - target)**2)   (or sum, or none: elementwise)
    Backward: grad_pred = 2 (pred - target) * grad_out (/ N for mean);  grad_target = -grad_pred
    Saves:    pred - target
    """

    def __init__(self, reduction="mean"):
        self.reduction = _check_reduction(reduction)

    def forward(self, pred, target):
        if pred.shape != target.shape:
            raise ValueError(
                f"mse_loss: pred of shape {pred.shape} and target of shape {target.shape} "
                "must have the same shape")
        self.diff = pred - target
        sq = self.diff * self.diff
        if self.reduction == "mean":
            return sq.sum() / sq.size
        return sq.sum() if self.reduction == "sum" else sq

    def backward(self, grad_out):
        scale = 2 / self.diff.size if self.reduction == "mean" else 2
        grad_pred = self.diff * (grad_out * scale)
        return grad_pred, -grad_pred if self.needs_input_grad[1] else None


def mse_loss(pred, target, reduction="mean"):
    return MSELoss(reduction)(pred, target)
