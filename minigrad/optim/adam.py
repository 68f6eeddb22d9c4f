"""Adam (L2 weight decay in the gradient) and AdamW (decoupled weight decay)."""

import math

from minigrad.optim.optimizer import Optimizer, check_number


class Adam(Optimizer):
    """Adam, with PyTorch's ``torch.optim.Adam`` update (amsgrad=False), exactly.

    For each parameter p with gradient grad, at its step t = 1, 2, ... (m_0 = v_0 = 0)::

        g_t   = grad + weight_decay * p                 (L2 penalty; skipped if 0)
        m_t   = beta1 * m_{t-1} + (1 - beta1) * g_t     (first moment)
        v_t   = beta2 * v_{t-1} + (1 - beta2) * g_t**2  (second moment)
        p     = p - lr / (1 - beta1**t) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    The two ``1 - beta**t`` factors are the bias corrections: m_t and v_t start at zero, so
    early on they underestimate the moments by exactly those factors. Written out,
    ``m_hat = m_t / (1 - beta1**t)``, ``v_hat = v_t / (1 - beta2**t)`` and the step is
    ``lr * m_hat / (sqrt(v_hat) + eps)``; note that eps is added after dividing sqrt(v_t),
    as in PyTorch. On the first step m_hat = g_1 and v_hat = g_1**2, so every element moves by
    about ``lr * sign(g_1)``.

    With weight decay the penalty passes through the moment estimates and is divided by
    sqrt(v_hat) like the gradient, so large-gradient weights are barely decayed; ``AdamW``
    decouples the decay from the gradient instead (Loshchilov and Hutter, 2019).

    Args:
        params:        an iterable of Parameters (``model.parameters()``).
        lr:            learning rate (>= 0).
        betas:         (beta1, beta2), each in [0, 1): decay rates of the moment averages.
        eps:           added to the denominator for numerical stability (>= 0).
        weight_decay:  L2 penalty factor (>= 0), added to the gradient.

    State per parameter: ``step`` (int), ``exp_avg`` (m_t), ``exp_avg_sq`` (v_t).

    Reference: Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015,
    https://arxiv.org/abs/1412.6980
    """

    hyperparameter_names = ("lr", "betas", "eps", "weight_decay")
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def configure(self, lr, betas, eps, weight_decay):
        name = type(self).__name__
        self.lr = check_number(name, "lr", lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (check_number(name, "betas[0]", betas[0], high=1.0),
                      check_number(name, "betas[1]", betas[1], high=1.0))
        self.eps = check_number(name, "eps", eps)
        self.weight_decay = check_number(name, "weight_decay", weight_decay)

    def update(self, p, state, lr, xp):
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        beta1, beta2 = self.betas
        m, v = state["exp_avg"], state["exp_avg_sq"]
        work = self.scratch(p, 0)

        g = p.grad
        if self.weight_decay != 0 and self.decoupled_weight_decay:
            xp.multiply(p.data, 1.0 - lr * self.weight_decay, out=p.data)
        elif self.weight_decay != 0:
            g = self.scratch(p, 1)
            xp.multiply(p.data, self.weight_decay, out=g)
            xp.add(g, p.grad, out=g)

        xp.multiply(m, beta1, out=m)
        xp.multiply(g, 1.0 - beta1, out=work)
        xp.add(m, work, out=m)

        xp.multiply(v, beta2, out=v)
        xp.multiply(g, g, out=work)
        xp.multiply(work, 1.0 - beta2, out=work)
        xp.add(v, work, out=v)

        step_size = lr / (1.0 - beta1 ** t)
        xp.sqrt(v, out=work)
        xp.divide(work, math.sqrt(1.0 - beta2 ** t), out=work)
        xp.add(work, self.eps, out=work)            # work = denominator
        xp.divide(m, work, out=work)
        xp.multiply(work, step_size, out=work)
        xp.subtract(p.data, work, out=p.data)


class AdamW(Adam):
    """Adam with decoupled weight decay: PyTorch's ``torch.optim.AdamW`` update, exactly.

    For each parameter p with gradient grad, at its step t = 1, 2, ... (m_0 = v_0 = 0)::

        p     = p * (1 - lr * weight_decay)             (decay first, outside the gradient)
        m_t   = beta1 * m_{t-1} + (1 - beta1) * grad
        v_t   = beta2 * v_{t-1} + (1 - beta2) * grad**2
        p     = p - lr / (1 - beta1**t) * m_t / (sqrt(v_t) / sqrt(1 - beta2**t) + eps)

    The bias corrections are those of ``Adam``. Because the decay never enters m_t and v_t,
    every weight shrinks by the same factor ``1 - lr * weight_decay`` per step, whatever its
    gradient history; with Adam's L2 penalty the decay is divided by sqrt(v_hat) and so is
    weak exactly where gradients are large. A zero gradient shows the difference plainly:
    AdamW still multiplies p by ``1 - lr * weight_decay``; Adam + L2 moves p by about
    ``lr * sign(p)`` on its first step.

    Args:
        params:        an iterable of Parameters (``model.parameters()``).
        lr:            learning rate (>= 0).
        betas:         (beta1, beta2), each in [0, 1).
        eps:           added to the denominator for numerical stability (>= 0).
        weight_decay:  decoupled decay factor (>= 0); 0.01 by default, as in PyTorch.

    State per parameter: ``step`` (int), ``exp_avg`` (m_t), ``exp_avg_sq`` (v_t).

    Reference: Loshchilov and Hutter, "Decoupled Weight Decay Regularization", ICLR 2019,
    https://arxiv.org/abs/1711.05101
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
