"""Optimizers, the max-norm constraint and learning-rate schedules.

A training step::

    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = optim.CosineAnnealingLR(optimizer, T_max=epochs)
    max_norm = optim.MaxNorm(model, max_norm=3.0)
    for epoch in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            max_norm.apply()
        schedule.step()

Create the optimizer after moving the model to its device: its state is allocated next to
each parameter, on the parameter's device.
"""

from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.constraints import MaxNorm
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.schedules import (
    CosineAnnealingLR, ExponentialLR, LinearWarmup, LRSchedule, StepLR)
from minigrad.optim.sgd import SGD

__all__ = [
    "Adam", "AdamW", "CosineAnnealingLR", "ExponentialLR", "LRSchedule", "LinearWarmup",
    "MaxNorm", "Optimizer", "SGD", "StepLR",
]
