"""Mixed precision: low-precision forward and backward, float32 master weights, loss scaling.

Why. float16 halves the memory of weights, activations and gradients, and GPUs multiply it
faster. Training entirely in float16 fails in two ways:

1. Updates vanish. float16 keeps 11 significant bits: near w = 1 the spacing of float16
   numbers is 2**-10 ~ 1e-3, so an update lr * grad = 1e-5 rounds back to w and the weight
   never moves. Fix: keep a float32 MASTER copy of every weight; the optimizer updates the
   masters, and the model gets float16 copies of them after each step.
2. Gradients underflow. float16's smallest subnormal is 2**-24 ~ 6e-8, and smaller
   gradients become 0 (below 2**-14 ~ 6e-5 they already lose digits). Fix: LOSS SCALING. Backprop
   S * loss instead of loss, which multiplies every gradient by S and lifts it into range,
   then divide the gradients by S in float32, where they fit.

A too large S overflows float16 (its largest value is 65504) into inf, so S is adjusted as
training goes (dynamic loss scaling, as in PyTorch's ``GradScaler``; Micikevicius et al.,
"Mixed Precision Training", ICLR 2018, https://arxiv.org/abs/1710.03740). One
``MixedPrecision.step(loss)`` does, with W32 the masters and W16 the model's weights::

    g16 = d(S * loss)/dW16                    backward in low precision, upstream gradient S
    g32 = float32(g16) / S                    unscale in float32
    if any g32 is inf or nan:                 S was too large for this step
        skip the update;  S = S * backoff_factor;  good_steps = 0;  skipped_steps += 1
    else:
        W32 = optimizer(W32, g32);  W16 = round(W32)
        good_steps += 1
        if good_steps == growth_interval:     S has been safe for a while: try a larger one
            S = S * growth_factor;  good_steps = 0

A skipped step changes nothing but S: weights, optimizer state and its step count stay as
they were. With the defaults S starts at 2**15, halves on overflow and doubles after 2000
good steps, so it settles near the largest safe value.

Compute the loss itself in float32 (``F.cross_entropy(logits.astype(np.float32), y)``): the
cast is a differentiable op, so the backward still runs in float16, but a float16 loss has
only 3 significant digits, a batch sum of losses can pass 65504, and an upstream S above
65504 would itself be inf in float16.

Dropout and low precision. The keep decision never rounds: masks compare 32-bit random
integers with ceil(keep * 2**32) (``minigrad.random.keep_threshold``), whatever the input
dtype, so p = 0 keeps every element and P(keep) is 1 - p to within 2**-32. A float16 or
bfloat16 uniform would round to exactly 0 or 1 and, compared either way, could drop elements
even at p = 0. Only the kept values are rounded: y = float16(x * float16(1 / (1 - p))), which
is float16(x / (1 - p)) when 1/(1-p) is a float16 number, such as 2 (p = 0.5) or 1.25
(p = 0.2), and within one float16 step of it otherwise.

bfloat16 has float32's exponent range (no overflow, so scaling is rarely needed) and only 8
significant bits. NumPy has no bfloat16 type; the ``ml_dtypes`` package adds one
(``pip install ml_dtypes``). It stores bfloat16 values, but NumPy's matrix products on them
return float32, so on NumPy "bfloat16" means bfloat16 weights with mostly float32 arithmetic:
it shows the effect of rounding the weights, not bfloat16 speed. Feed such a model float32
inputs: the dropout op takes float16, float32 and float64 arrays only. CuPy accepts
ml_dtypes' bfloat16 only in its most recent releases, as an experimental feature; minigrad
has not been tried with it.

Speed. NumPy has no BLAS routine for float16 matrix products, so on the CPU a float16 step
is several times slower than a float32 one: here mixed precision is for studying its
numerics and memory. The speed comes on GPUs, whose float16 units are faster.

Measured (2-core CPU, Fashion-MNIST, the default 784-500-10 MLP with dropout 0.5, 3 epochs,
seed 0): ``python examples/mnist_mlp.py --dataset fashion-mnist --epochs 3 --dtype float16``
reached 83.80% test accuracy with no skipped step (the scale grew from 2**15 to 2**16 after
2000 steps), against 83.76% for the same command with ``--dtype float32``; its epochs took
about 5 times as long (a rough figure: the machine was shared).
"""

import numpy as np

from minigrad.backend import as_numpy, device_of, get_xp, to_device
from minigrad.optim.optimizer import check_number
from minigrad.tensor import Tensor

MASTER_DTYPE = np.dtype(np.float32)


def bfloat16():
    """The bfloat16 NumPy dtype from ``ml_dtypes``; ImportError saying how to get it."""
    try:
        import ml_dtypes
    except ImportError:
        raise ImportError("bfloat16 needs the ml_dtypes package (NumPy has no bfloat16 "
                          "type): pip install ml_dtypes, or use float16") from None
    return np.dtype(ml_dtypes.bfloat16)


def low_precision_dtype(dtype):
    """``dtype`` ("float16", np.float16, "bfloat16", ml_dtypes.bfloat16) as a NumPy dtype.

    Raises ValueError for anything else: mixed precision is for 16-bit floats.
    """
    if isinstance(dtype, str) and dtype == "bfloat16":
        return bfloat16()
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is not None and (dt == np.float16 or dt.name == "bfloat16"):
        return dt
    raise ValueError(f"mixed precision needs dtype float16 or bfloat16, got {dtype!r}; for "
                     "float32 or float64 train without MixedPrecision")


def widen_bfloat16(state):
    """A state dict with its bfloat16 arrays as float32 (exact), the others unchanged.

    ``.npz`` files (and so checkpoints) cannot describe ml_dtypes' types: a saved bfloat16
    array reads back as raw 2-byte records. ``Module.load_state_dict`` casts the float32
    values back to the model's bfloat16 exactly.
    """
    return {name: value.astype(np.float32) if value.dtype.name == "bfloat16" else value
            for name, value in state.items()}


def _check_model_and_optimizer(model, optimizer):
    """The model's parameters that ``optimizer`` updates, in the optimizer's order."""
    if not callable(getattr(model, "parameters", None)):
        raise TypeError(f"MixedPrecision: model must be a Module, got {type(model).__name__}")
    if not isinstance(getattr(optimizer, "params", None), list) or not hasattr(optimizer, "step"):
        raise TypeError(f"MixedPrecision: optimizer must be a minigrad.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    in_model = {id(p) for p in model.parameters()}
    for i, p in enumerate(optimizer.params):
        if id(p) not in in_model:
            raise ValueError(f"MixedPrecision: the optimizer's parameter {i} is not a parameter "
                             "of the model; build the optimizer on model.parameters() (in "
                             "float32) and wrap each optimizer only once")
        if p.data.dtype.kind != "f":
            raise TypeError(f"MixedPrecision: parameter {i} has dtype {p.data.dtype}; build the "
                            "model in float32 and let MixedPrecision cast it")
    return list(optimizer.params)


class MixedPrecision:
    """Train ``model`` in float16 (or bfloat16) with float32 master weights and loss scaling.

    Usage: build the model in float32 and the optimizer on its parameters, then wrap both::

        model = build_model(dtype=np.float32)
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        amp = MixedPrecision(model, optimizer, dtype=np.float16)
        for x, y in batches:                  # x in float16
            loss = F.cross_entropy(model(x).astype(np.float32), y)
            amp.step(loss)                    # replaces zero_grad / backward / step

    Wrapping casts the model's parameters to ``dtype`` in place and gives the optimizer float32
    master copies (``master_params``) instead: the optimizer updates the masters, and its
    state (momentum, Adam moments) is float32. The module docstring has the step's formulas.

    Args:
        model:            a Module with float32 parameters (cast to ``dtype`` here; buffers
                          are left as they are).
        optimizer:        a minigrad.optim optimizer built on ``model.parameters()``.
        dtype:            np.float16 (default) or "bfloat16" (needs ml_dtypes).
        init_scale:       the first loss scale S (> 0), 2**15 by default.
        growth_factor:    S is multiplied by it after ``growth_interval`` good steps (> 1).
        backoff_factor:   S is multiplied by it after an overflow (in (0, 1)).
        growth_interval:  the number of consecutive good steps before S grows (>= 1).

    Attributes:
        scale:          the current loss scale S (a Python float).
        good_steps:     good steps since S last changed.
        steps:          steps taken or skipped so far; ``skipped_steps``: those skipped.
        params:         the model's low-precision parameters the optimizer updates.
        master_params:  their float32 masters, in the same order (the optimizer's params).

    Reference: Micikevicius et al., "Mixed Precision Training", ICLR 2018.
    https://arxiv.org/abs/1710.03740
    """

    def __init__(self, model, optimizer, dtype=np.float16, init_scale=2.0 ** 15,
                 growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
        self.dtype = low_precision_dtype(dtype)
        self.scale = check_number("MixedPrecision", "init_scale", init_scale, low_open=True)
        self.growth_factor = check_number("MixedPrecision", "growth_factor", growth_factor,
                                          low=1.0, low_open=True)
        self.backoff_factor = check_number("MixedPrecision", "backoff_factor",
                                           backoff_factor, low_open=True, high=1.0)
        if isinstance(growth_interval, bool) or not isinstance(growth_interval, int) \
                or growth_interval < 1:
            raise ValueError(f"MixedPrecision: growth_interval must be a positive int (good "
                             f"steps before the scale grows), got {growth_interval!r}")
        self.growth_interval = growth_interval
        self.params = _check_model_and_optimizer(model, optimizer)
        self.model, self.optimizer = model, optimizer
        self.master_params = [Tensor(p.data.astype(MASTER_DTYPE)) for p in self.params]
        for p in model.parameters():
            p.data = p.data.astype(self.dtype)
            p.grad = None
        optimizer.params[:] = self.master_params
        self.good_steps = self.steps = self.skipped_steps = 0

    def step(self, loss, after_step=None):
        """Backprop ``loss`` scaled, unscale, and update the masters unless anything overflowed.

        ``after_step`` (optional, no arguments) runs after the optimizer updated the masters
        and before they are copied to the model: a constraint such as
        ``optim.MaxNorm(amp.master_params, 3.0).apply`` belongs there. Returns True when the
        step was taken, False when it was skipped (inf or nan in a gradient).
        """
        if not isinstance(loss, Tensor) or loss.data.size != 1:
            raise ValueError("MixedPrecision.step needs the loss as a one-element Tensor (e.g. "
                             "the mean cross-entropy), got "
                             f"{getattr(loss, 'shape', type(loss).__name__)}")
        self.model.zero_grad()
        loss.backward(self.scale)
        finite = self._unscale_into_masters()
        self.steps += 1
        if not finite:
            self.skipped_steps += 1
            self.good_steps = 0
            self.scale *= self.backoff_factor
            for master in self.master_params:
                master.grad = None
            return False
        self.optimizer.step()
        if after_step is not None:
            after_step()
        self.copy_masters_to_model()
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0
        return True

    def _unscale_into_masters(self):
        """Set master.grad = float32(p.grad) / S; return False if any of them is inf or nan."""
        inv_scale = 1.0 / self.scale
        flags = []
        for p, master in zip(self.params, self.master_params):
            if p.grad is None:
                master.grad = None
                continue
            grad = p.grad.astype(MASTER_DTYPE)   # a new array: p.grad may be shared
            grad *= inv_scale
            master.grad = grad
            p.grad = None   # free each low-precision gradient once it has its float32 copy
            flags.append(get_xp(grad).isfinite(grad).all())
        if not flags:
            return True
        # one device-to-host transfer for all parameters, not one per parameter
        return bool(get_xp(self.master_params[0].data).stack(flags).all())

    def copy_masters_to_model(self):
        """Round the masters to the model's dtype: W16 = round(W32)."""
        for p, master in zip(self.params, self.master_params):
            p.data = master.data.astype(self.dtype)

    def state_dict(self):
        """Scale, counters and the float32 masters (host copies), for checkpoints.

        Save ``optimizer.state_dict()`` next to it, as without mixed precision.
        """
        return {"dtype": self.dtype.name, "scale": self.scale,
                "growth_factor": self.growth_factor, "backoff_factor": self.backoff_factor,
                "growth_interval": self.growth_interval, "good_steps": self.good_steps,
                "steps": self.steps, "skipped_steps": self.skipped_steps,
                "masters": [as_numpy(m.data).copy() for m in self.master_params]}

    def load_state_dict(self, state):
        """Restore what ``state_dict()`` saved and copy the masters to the model."""
        if state["dtype"] != self.dtype.name:
            raise ValueError(f"MixedPrecision.load_state_dict: the state was saved with dtype "
                             f"{state['dtype']}, this wrapper uses {self.dtype.name}")
        masters = state["masters"]
        if len(masters) != len(self.master_params):
            raise ValueError(f"MixedPrecision.load_state_dict: the state has {len(masters)} "
                             f"master weights, this model {len(self.master_params)}; was it "
                             "saved from a different model?")
        for i, (master, saved) in enumerate(zip(self.master_params, masters)):
            if tuple(saved.shape) != master.data.shape:
                raise ValueError(f"MixedPrecision.load_state_dict: master {i} has shape "
                                 f"{tuple(saved.shape)} in the state, {master.data.shape} here")
        for master, saved in zip(self.master_params, masters):
            host = np.asarray(saved, dtype=MASTER_DTYPE).copy()
            master.data = to_device(host, device_of(master.data))
            master.grad = None
        self.scale = float(state["scale"])
        self.growth_factor = float(state["growth_factor"])
        self.backoff_factor = float(state["backoff_factor"])
        self.growth_interval = int(state["growth_interval"])
        self.good_steps = int(state["good_steps"])
        self.steps = int(state["steps"])
        self.skipped_steps = int(state["skipped_steps"])
        self.copy_masters_to_model()

    def __repr__(self):
        return (f"MixedPrecision(dtype={self.dtype.name}, scale={self.scale:g}, "
                f"steps={self.steps}, skipped_steps={self.skipped_steps})")
