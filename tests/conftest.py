"""Shared fixtures: every test body runs on each array backend present.

Backends: "numpy" (device "cpu"), "strict" (NumPy arrays that refuse implicit host
conversion, as CuPy does: it catches host-only calls in CI, which has no GPU) and "cupy"
(device "cuda", marked ``gpu`` and skipped with a reason where no GPU is present).
"""

import os
import pathlib
import signal
import sys

import numpy as np
import pytest

import minigrad
from minigrad.backend import as_numpy, cuda_available, to_device, xp_for_device

DEVICES = {"numpy": "cpu", "strict": "strict", "cupy": "cuda"}

# the examples' shared training loop is imported by the example tests
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))


class Backend:
    """The array backend a test runs on, with helpers to build inputs there."""

    def __init__(self, name):
        self.name = name
        self.device = DEVICES[name]
        self.xp = xp_for_device(self.device)

    def array(self, values, dtype=None):
        return to_device(np.asarray(values, dtype=dtype), self.device)

    def tensor(self, values, requires_grad=False, dtype=None):
        return minigrad.Tensor(self.array(values, dtype), requires_grad=requires_grad)

    def randn(self, *shape, seed=0, dtype=np.float64, requires_grad=False):
        values = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
        return self.tensor(values, requires_grad=requires_grad)

    @staticmethod
    def numpy(x):
        return as_numpy(getattr(x, "data", x)) if isinstance(x, minigrad.Tensor) else as_numpy(x)

    def __repr__(self):
        return self.name


def _backend_params(names):
    return [pytest.param(n, marks=pytest.mark.gpu) if n == "cupy" else n for n in names]


def make_backend(name):
    if name == "cupy" and not cuda_available():
        pytest.skip("needs CuPy and a CUDA GPU; none on this machine")
    return Backend(name)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A tiny learnable 28x28 "mnist" on disk (class c is a bright bar at row 2c), with the
    dataset table pointed at it and downloads off: examples train on it in seconds."""
    from minigrad.data import datasets as ds
    from test_data import table_for, write_files

    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c:2 * c + 6, 4:20] += 150
        return images, labels

    (train_x, train_y), (test_x, test_y) = make(96), make(32)
    arrays = {ds.TRAIN_IMAGES: train_x, ds.TRAIN_LABELS: train_y,
              ds.TEST_IMAGES: test_x, ds.TEST_LABELS: test_y}
    monkeypatch.setitem(ds.DATASETS, "mnist", table_for(arrays))
    monkeypatch.setitem(ds.MIRRORS, "mnist", ())
    monkeypatch.setattr(ds, "SYSTEM_DIRS", {})
    write_files(tmp_path / "data" / "mnist", arrays)
    return tmp_path / "data"


@pytest.fixture
def sigterm_at_step(monkeypatch):
    """``disarm = sigterm_at_step(n)``: the n-th progress-bar update of an example's training
    loop sends SIGTERM to this process, a deterministic stand-in for Ctrl-C mid-epoch.
    ``disarm()`` removes the trigger (before resuming)."""
    import training
    update = training.ProgressBar.update

    def arm(n):
        calls = {"n": 0}

        def update_then_interrupt(self, k, metrics_fn):
            update(self, k, metrics_fn)
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGTERM)

        monkeypatch.setattr(training.ProgressBar, "update", update_then_interrupt)
        return lambda: monkeypatch.setattr(training.ProgressBar, "update", update)
    return arm


@pytest.fixture(params=_backend_params(["numpy", "strict", "cupy"]))
def backend(request):
    """Each test using this fixture runs on numpy, strict and (with a GPU) cupy."""
    return make_backend(request.param)


@pytest.fixture(params=_backend_params(["numpy", "cupy"]))
def fast_backend(request):
    """For heavier tests: numpy and (with a GPU) cupy, without the slow strict wrapper."""
    return make_backend(request.param)
