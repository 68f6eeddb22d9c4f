"""Learning-rate schedules: closed-form lr(t) written into ``optimizer.lr`` by ``step()``."""

import math
import numbers

from minigrad.optim.optimizer import Optimizer, check_number


def _check_count(owner, name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class LRSchedule:
    """Base class: a closed-form learning rate ``lr_at(t)`` of the step count t = 0, 1, ...

    Creating a schedule sets ``optimizer.lr = lr_at(0)``; each ``step()`` (usually once per
    epoch, after that epoch's optimizer steps) advances t by one and sets
    ``optimizer.lr = lr_at(t)``. Being closed form, the lr depends on t alone, never on the
    previous lr, so a schedule restored from ``state_dict()`` continues exactly.

    The base learning rate is ``optimizer.initial_lr``, which the first schedule attached to
    an optimizer sets from ``optimizer.lr`` (PyTorch's ``initial_lr``). Schedules created
    later on the same optimizer, such as the ``after`` of ``LinearWarmup``, therefore share
    the base lr in whichever order they are made.

    Attributes:
        optimizer:  the optimizer whose ``lr`` is set.
        base_lr:    the learning rate the schedule scales.
        last_step:  t, the number of ``step()`` calls so far.
    """

    hyperparameter_names = ()

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        if optimizer.initial_lr is None:
            optimizer.initial_lr = optimizer.lr
        self.optimizer = optimizer
        self.base_lr = optimizer.initial_lr
        self.last_step = 0
        optimizer.lr = self.get_lr()

    def lr_at(self, t):
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at()")

    def get_lr(self):
        """The learning rate for the current step count (what ``optimizer.lr`` was set to)."""
        return self.lr_at(self.last_step)

    def step(self):
        """Advance one step and set the optimizer's lr; returns the new lr."""
        self.last_step += 1
        self.optimizer.lr = self.get_lr()
        return self.optimizer.lr

    def state_dict(self):
        """Type, step count, base lr and hyperparameters: plain Python values."""
        state = {"type": type(self).__name__, "last_step": self.last_step,
                 "base_lr": self.base_lr}
        state.update({name: getattr(self, name) for name in self.hyperparameter_names})
        return state

    def load_state_dict(self, state):
        """Restore a ``state_dict()`` and set the optimizer's lr to the restored value."""
        name = type(self).__name__
        if state.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state was saved from "
                             f"{state.get('type')!r}, not {name}")
        for key in self.hyperparameter_names:
            setattr(self, key, state[key])
        self.base_lr = check_number(name, "base_lr", state["base_lr"])
        self.last_step = _check_count(name, "last_step", state["last_step"], minimum=0)
        self.optimizer.lr = self.get_lr()

    def __repr__(self):
        hyper = "".join(f", {k}={getattr(self, k)}" for k in self.hyperparameter_names)
        return f"{type(self).__name__}(last_step={self.last_step}{hyper})"


class StepLR(LRSchedule):
    """Multiply the lr by ``gamma`` every ``step_size`` steps (PyTorch's ``StepLR``).

    lr(t) = base_lr * gamma ** floor(t / step_size)
    """

    hyperparameter_names = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _check_count("StepLR", "step_size", step_size)
        self.gamma = check_number("StepLR", "gamma", gamma, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class ExponentialLR(LRSchedule):
    """Multiply the lr by ``gamma`` every step (PyTorch's ``ExponentialLR``).

    lr(t) = base_lr * gamma ** t
    """

    hyperparameter_names = ("gamma",)

    def __init__(self, optimizer, gamma):
        self.gamma = check_number("ExponentialLR", "gamma", gamma, low_open=True)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** t


class CosineAnnealingLR(LRSchedule):
    """Half a cosine from base_lr down to ``eta_min`` over ``T_max`` steps.

    lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    This is the closed form of PyTorch's ``CosineAnnealingLR`` (SGDR without restarts). It
    reaches eta_min at t = T_max; past T_max the cosine carries on and the lr rises again,
    as in PyTorch, so choose T_max = the number of steps you will take.
    """

    hyperparameter_names = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _check_count("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = check_number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, t):
        cosine = (1.0 + math.cos(math.pi * t / self.T_max)) / 2.0
        return self.eta_min + (self.base_lr - self.eta_min) * cosine


class LinearWarmup(LRSchedule):
    """Ramp the lr linearly up to base_lr over ``warmup_steps``, then hand over to ``after``.

    lr(t) = base_lr * (start_factor + (1 - start_factor) * t / warmup_steps)  t < warmup_steps
    lr(t) = after.lr_at(t - warmup_steps)                                    t >= warmup_steps

    Without ``after`` the lr stays at base_lr once warm. The ramp is PyTorch's ``LinearLR``
    (end_factor 1, closed form) and the handover its ``SequentialLR``: the ``after`` schedule
    starts from its own t = 0 at the end of the warm-up, so warm-up then cosine is
    ``LinearWarmup(opt, 100, after=CosineAnnealingLR(opt, T_max=total - 100))``. The default
    start factor 0 makes the very first step's lr 0, as in the common "linear warm-up from
    zero" (Goyal et al., 2017, use a small nonzero start: pass ``start_factor``).

    Args:
        optimizer:     the optimizer whose lr is set.
        warmup_steps:  length of the ramp (>= 1).
        after:         a schedule on the same optimizer to follow the ramp, or None.
        start_factor:  lr(0) / base_lr, in [0, 1].
    """

    hyperparameter_names = ("warmup_steps", "start_factor")

    def __init__(self, optimizer, warmup_steps, after=None, start_factor=0.0):
        self.warmup_steps = _check_count("LinearWarmup", "warmup_steps", warmup_steps)
        self.start_factor = check_number("LinearWarmup", "start_factor", start_factor,
                                         high=1.0, high_open=False)
        if after is not None and not isinstance(after, LRSchedule):
            raise TypeError("LinearWarmup: after must be a schedule (such as "
                            f"CosineAnnealingLR) or None, got {type(after).__name__}")
        if after is not None and after.optimizer is not optimizer:
            raise ValueError("LinearWarmup: the after schedule drives a different optimizer; "
                             "create it on the same one")
        self.after = after
        super().__init__(optimizer)

    def lr_at(self, t):
        if t < self.warmup_steps:
            ramp = self.start_factor + (1.0 - self.start_factor) * t / self.warmup_steps
            return self.base_lr * ramp
        if self.after is None:
            return self.base_lr
        return self.after.lr_at(t - self.warmup_steps)

    def step(self):
        lr = super().step()
        if self.after is not None:   # keep the follower's own count in step with ours
            self.after.last_step = max(self.last_step - self.warmup_steps, 0)
        return lr

    def state_dict(self):
        state = super().state_dict()
        state["after"] = None if self.after is None else self.after.state_dict()
        return state

    def load_state_dict(self, state):
        if (state.get("after") is None) != (self.after is None):
            raise ValueError("LinearWarmup.load_state_dict: the saved schedule and this one "
                             "differ in whether they have an after schedule")
        if self.after is not None:
            self.after.load_state_dict(state["after"])
        super().load_state_dict(state)
