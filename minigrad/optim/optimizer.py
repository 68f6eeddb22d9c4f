"""The Optimizer base class: parameters, learning rate, per-parameter state, state_dict."""

import numbers

import numpy as np

from minigrad.backend import as_numpy, device_of, get_xp, to_device
from minigrad.tensor import Tensor


def parameter_list(params, owner):
    """``params`` (an iterable of Tensors) as a list, with clear errors for common mistakes."""
    if isinstance(params, Tensor):
        raise TypeError(f"{owner}: params must be an iterable of Tensors, got a single Tensor; "
                        "wrap it in a list: [param]")
    if callable(getattr(params, "parameters", None)):
        raise TypeError(f"{owner}: params must be an iterable of Tensors, got a "
                        f"{type(params).__name__}; pass model.parameters()")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{owner}: params must be an iterable of Tensors, got "
                        f"{type(params).__name__}") from None
    if not params:
        raise ValueError(f"{owner}: got an empty parameter list; pass model.parameters() of a "
                         "model that has parameters")
    seen = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{owner}: params[{i}] is a {type(p).__name__}, not a Tensor")
        if p.data.dtype.kind != "f":
            raise TypeError(f"{owner}: params[{i}] has dtype {p.data.dtype}; only floating-point "
                            "parameters can be optimized")
        if id(p) in seen:
            raise ValueError(f"{owner}: params[{i}] appears more than once; pass each parameter "
                             "once")
        seen.add(id(p))
    return params


def check_number(owner, name, value, low=0.0, high=None, low_open=False, high_open=True):
    """``value`` as a Python float, or a ValueError naming the allowed range.

    Python floats keep float32 arrays float32 (NumPy 2's NEP 50 rules), while a NumPy float64
    scalar would promote them; hyperparameters are therefore stored as Python floats.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:
        left = "(" if low_open else "["
        right = "]" if high is None or not high_open else ")"
        raise ValueError(f"{owner}: {name} must be in {left}{low}, "
                         f"{'inf' if high is None else high}{right}, got {value}")
    return value


class Optimizer:
    """Base class of the optimizers: a parameter list, ``lr`` and a state dict per parameter.

    Subclasses write ``configure(**hyperparameters)`` (validate and store them; also used by
    ``load_state_dict``) and ``update(p, state, lr, xp)`` (change ``p.data`` in place).

    Conventions shared by every optimizer here:

    - Parameters whose ``grad`` is None are skipped (their state does not advance).
    - ``p.data`` is updated in place (``out=p.data``): the model holds the Parameter object, and
      a new array would double the memory for a moment. ``p.grad`` is never written to: an op
      may hand the same gradient array to several parameters.
    - State arrays are made with the parameter's array module, so they live on its device and
      have its dtype; float32 parameters and state stay float32.
    - Scratch arrays for intermediate results are allocated once per (shape, dtype, device)
      and reused by every step, so a step allocates nothing after the first.

    Attributes:
        params:      the list of parameters, in the order given.
        lr:          the learning rate used by the next ``step()``; schedules change it.
        initial_lr:  the learning rate schedules scale (set by the first schedule attached).
        state:       one dict per parameter (the momentum or moment arrays, step counts).
    """

    hyperparameter_names = ("lr",)

    def __init__(self, params, **hyperparameters):
        self.params = parameter_list(params, type(self).__name__)
        self.initial_lr = None
        self.state = [{} for _ in self.params]
        self._scratch = {}
        self.configure(**hyperparameters)

    def configure(self, **hyperparameters):
        raise NotImplementedError(f"{type(self).__name__} must implement configure()")

    def update(self, p, state, lr, xp):
        raise NotImplementedError(f"{type(self).__name__} must implement update()")

    def step(self):
        """Update every parameter that has a gradient, in place."""
        lr = float(self.lr)   # a schedule or user may have set a NumPy scalar
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, state, lr, get_xp(p.data, p.grad))

    def zero_grad(self):
        """Set every parameter's gradient to None (the next backward starts from nothing)."""
        for p in self.params:
            p.grad = None

    def scratch(self, p, index=0):
        """Work array number ``index`` shaped like ``p``, shared by parameters of that shape."""
        key = (p.data.shape, p.data.dtype.str, device_of(p.data), index)
        array = self._scratch.get(key)
        if array is None:
            array = self._scratch[key] = get_xp(p.data).empty_like(p.data)
        return array

    def hyperparameters(self):
        """The hyperparameters as a dict of Python values (what ``configure`` accepts)."""
        return {name: getattr(self, name) for name in self.hyperparameter_names}

    def state_dict(self):
        """Type, hyperparameters and per-parameter state, as host NumPy copies.

        The result holds only dicts, lists, numbers, strings and NumPy arrays, so it can go
        straight into ``minigrad.checkpoint.save_checkpoint``.
        """
        state = []
        for entry in self.state:
            state.append({key: as_numpy(value).copy() if hasattr(value, "shape") else value
                          for key, value in entry.items()})
        hyper = {key: list(value) if isinstance(value, tuple) else value
                 for key, value in self.hyperparameters().items()}
        return {"type": type(self).__name__, "hyperparameters": hyper,
                "initial_lr": self.initial_lr, "state": state}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by ``state_dict()``.

        The parameter list must match the saved one in length and shapes (same model, same
        order). State arrays are copied onto each parameter's device, in its dtype.
        """
        name = type(self).__name__
        if state_dict.get("type") != name:
            raise ValueError(f"{name}.load_state_dict: the state was saved from "
                             f"{state_dict.get('type')!r}, not {name}")
        saved = state_dict["state"]
        if len(saved) != len(self.params):
            raise ValueError(f"{name}.load_state_dict: the state has {len(saved)} parameters "
                             f"but this optimizer has {len(self.params)}; was it saved from a "
                             "different model?")
        new_state = []
        for i, (p, entry) in enumerate(zip(self.params, saved)):
            restored = {}
            for key, value in entry.items():
                if isinstance(value, np.ndarray):
                    if value.shape != p.data.shape:
                        raise ValueError(f"{name}.load_state_dict: state '{key}' of parameter "
                                         f"{i} has shape {value.shape}, the parameter "
                                         f"{p.data.shape}")
                    value = to_device(value.astype(p.data.dtype, copy=True), device_of(p.data))
                restored[key] = value
            new_state.append(restored)
        self.configure(**state_dict["hyperparameters"])
        self.initial_lr = state_dict.get("initial_lr")
        self.state = new_state

    def __repr__(self):
        hyper = ", ".join(f"{k}={v}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"
