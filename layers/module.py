"""Module, Parameter and Sequential: the containers that layers and models are made of."""

import numpy as np

from minigrad.backend import as_numpy, check_device, to_device
from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that is a learnable weight of a Module: requires_grad=True by default."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True, device=None, dtype=None):
        super().__init__(data, requires_grad=requires_grad, device=device, dtype=dtype)


class Module:
    """Base class of layers and models, as ``torch.nn.Module``.

    A Module's parameters are its attributes that are Parameters, its children the attributes
    that are Modules (or lists of Modules), found in the order they were assigned. Buffers are
    non-learnable arrays saved with the model (running statistics): declare them with
    ``register_buffer``.

    ``training`` is True after construction; ``train()``/``eval()`` set it recursively, and
    layers such as Dropout read it in ``forward``. There is no global train flag.
    """

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    # -- structure --------------------------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)) and value and all(
                    isinstance(v, Module) for v in value):
                for i, child in enumerate(value):
                    yield f"{name}.{i}", child

    def children(self):
        return [child for _, child in self.named_children()]

    def named_modules(self, prefix=""):
        """This module and every descendant, depth first, with dotted names."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            if isinstance(value, Parameter):
                yield (f"{prefix}.{name}" if prefix else name), value
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}.{name}" if prefix else name)

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def register_buffer(self, name, array):
        """Keep ``array`` as attribute ``name``, saved in state_dict and moved by to()."""
        if "_buffer_names" not in vars(self):
            self._buffer_names = []
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, array)

    def named_buffers(self, prefix=""):
        for name in vars(self).get("_buffer_names", ()):
            yield (f"{prefix}.{name}" if prefix else name), self, name
        for cname, child in self.named_children():
            yield from child.named_buffers(f"{prefix}.{cname}" if prefix else cname)

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    # -- modes and gradients ----------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode on this module and every descendant; returns self."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode (dropout off, running statistics used); returns self."""
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    # -- device and state -------------------------------------------------------------------
    def to(self, device):
        """Move every parameter and buffer to ``device`` in place; returns self."""
        device = check_device(device)
        for p in self.parameters():
            p.data = to_device(p.data, device)
            p.grad = None if p.grad is None else to_device(p.grad, device)
        for _, owner, name in self.named_buffers():
            value = getattr(owner, name)
            if value is not None:
                setattr(owner, name, to_device(value, device))
        return self

    def state_dict(self):
        """Parameters and buffers by dotted name, as host NumPy copies."""
        state = {name: as_numpy(p.data).copy() for name, p in self.named_parameters()}
        for name, owner, attr in self.named_buffers():
            value = getattr(owner, attr)
            if value is not None:
                state[name] = as_numpy(value).copy()
        return state

    def load_state_dict(self, state):
        """Copy values from ``state`` into this module's parameters and buffers, checking
        that the names and the shapes match exactly."""
        targets = {name: (p, None) for name, p in self.named_parameters()}
        targets.update({name: (owner, attr) for name, owner, attr in self.named_buffers()})
        missing = sorted(set(targets) - set(state))
        unexpected = sorted(set(state) - set(targets))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}; was the state saved from a different model?")
        for name, (owner, attr) in targets.items():
            value = np.asarray(state[name])
            current = owner.data if attr is None else getattr(owner, attr)
            if current is not None and value.shape != current.shape:
                raise ValueError(f"load_state_dict: '{name}' has shape {value.shape} in the "
                                 f"state but {current.shape} in the model")
            device = "cpu" if current is None else Tensor(current).device
            if current is not None:
                value = value.astype(current.dtype, copy=False)
            if attr is None:
                owner.data = to_device(value.copy(), device)
            else:
                setattr(owner, attr, to_device(value.copy(), device))

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        children = list(self.named_children())
        for name, child in children:
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + ("\n)" if children else ")")


class Sequential(Module):
    """Apply modules in order: ``Sequential(a, b, c)(x) == c(b(a(x)))``."""

    def __init__(self, *modules):
        self.layers = list(modules)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def named_children(self):
        for i, layer in enumerate(self.layers):
            yield str(i), layer
