"""Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

from minigrad.optim.optimizer import Optimizer, check_number


class SGD(Optimizer):
    """Stochastic gradient descent, with PyTorch's ``torch.optim.SGD`` update, exactly.

    For each parameter p with gradient grad, step t = 1, 2, ...::

        g_t = grad + weight_decay * p                        (L2 penalty; skipped if 0)
        b_1 = g_1                                            (momentum buffer, if momentum > 0)
        b_t = momentum * b_{t-1} + (1 - dampening) * g_t     (t > 1)
        d_t = g_t + momentum * b_t    if nesterov            (look-ahead)
        d_t = b_t                     if momentum > 0, else d_t = g_t
        p   = p - lr * d_t

    The first buffer is the gradient itself, without dampening, as in PyTorch. This is the
    optimizer of the dropout paper (Srivastava et al. 2014, appendix A.2: momentum 0.95 to 0.99
    with a large learning rate and a max-norm constraint, see ``MaxNorm``).

    Args:
        params:        an iterable of Parameters (``model.parameters()``).
        lr:            learning rate (>= 0).
        momentum:      momentum factor in [0, 1) (0: plain SGD).
        nesterov:      use Nesterov momentum (needs momentum > 0 and dampening == 0).
        weight_decay:  L2 penalty factor (>= 0), added to the gradient.
        dampening:     in [0, 1]: scales the gradient entering the momentum buffer.

    State per parameter: ``momentum_buffer`` (when momentum > 0).
    """

    hyperparameter_names = ("lr", "momentum", "nesterov", "weight_decay", "dampening")

    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
                 dampening=0.0):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, dampening=dampening)

    def configure(self, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
        self.lr = check_number("SGD", "lr", lr)
        self.momentum = check_number("SGD", "momentum", momentum, high=1.0)
        self.weight_decay = check_number("SGD", "weight_decay", weight_decay)
        self.dampening = check_number("SGD", "dampening", dampening, high=1.0, high_open=False)
        if not isinstance(nesterov, bool):
            raise TypeError(f"SGD: nesterov must be True or False, got {nesterov!r}")
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")
        self.nesterov = nesterov

    def update(self, p, state, lr, xp):
        g = p.grad
        if self.weight_decay != 0:
            g = self.scratch(p, 1)
            xp.multiply(p.data, self.weight_decay, out=g)
            xp.add(g, p.grad, out=g)
        work = self.scratch(p, 0)
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()   # a copy: g may be p.grad
            else:
                xp.multiply(buf, self.momentum, out=buf)
                if self.dampening != 0:
                    xp.multiply(g, 1.0 - self.dampening, out=work)
                    xp.add(buf, work, out=buf)
                else:
                    xp.add(buf, g, out=buf)
            if self.nesterov:
                xp.multiply(buf, self.momentum, out=work)
                xp.add(work, g, out=work)
                g = work
            else:
                g = buf
        xp.multiply(g, lr, out=work)
        xp.subtract(p.data, work, out=p.data)
