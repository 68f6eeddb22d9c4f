"""Checkpoints: exact round trips, atomic writes, clear errors for damaged files."""

import math
import os
import re

import numpy as np
import pytest

import layers
from minigrad import checkpoint, optim, random
from minigrad.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def assert_identical(a, b):
    """Same structure, same types, arrays with the same dtype, shape and bytes."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for key in a:
            assert_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b)   # tuples come back as lists
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert type(b) is type(a) and b.dtype == a.dtype and b.shape == a.shape
        assert np.ascontiguousarray(b).tobytes() == np.ascontiguousarray(a).tobytes()
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    elif isinstance(a, float):
        assert type(b) is float and b == a and math.copysign(1, b) == math.copysign(1, a)
    else:
        assert type(b) is type(a) and b == a


NESTED = {
    "arrays": {
        "float32": np.linspace(-1, 1, 7, dtype=np.float32),
        "float16": np.array([1e-4, 65504.0], dtype=np.float16),
        "float64_2d": np.arange(12.0).reshape(3, 4),
        "transposed": np.arange(6, dtype=np.int32).reshape(2, 3).T,
        "uint64": np.array([2**64 - 1, 0], dtype=np.uint64),
        "int8": np.array([-128, 127], dtype=np.int8),
        "bool": np.array([True, False]),
        "complex": np.array([1 + 2j], dtype=np.complex64),
        "strings": np.array(["dropout", "ß"]),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "zero_d": np.array(2.5),
    },
    "scalars": [np.float32(0.1), np.int64(-7), np.uint8(255), np.bool_(True)],
    "python": {"int": 3, "neg": -(2**70), "big": 2**64 - 1, "huge": 2**200, "float": 0.1,
               "neg_zero": -0.0, "inf": math.inf, "nan": math.nan, "str": "p = 0.5 ✓",
               "true": True, "none": None},
    "containers": {"empty_dict": {}, "empty_list": [], "tuple": (1, (2.0, "x")),
                   "list_of_dicts": [{"a": np.ones(2)}, {}],
                   "tricky_keys": {"dict": 1, "array": 2, "list": {"scalar": 3}, "": 4}},
}


def test_nested_structures_round_trip_exactly(tmp_path):
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, **NESTED)
    assert_identical(NESTED, load_checkpoint(path))


def test_ints_beyond_int64_round_trip_exactly(tmp_path):
    values = [2**63, 2**64 - 1, -(2**63) - 1, 2**100 + 1]
    save_checkpoint(tmp_path / "c.npz", values=values)
    loaded = load_checkpoint(tmp_path / "c.npz")["values"]
    assert loaded == values and all(type(v) is int for v in loaded)


def test_generator_state_round_trip_continues_the_stream(tmp_path):
    gen = random.Generator(2**64 - 3)
    gen.next_key()
    save_checkpoint(tmp_path / "c.npz", rng=gen.get_state())
    expected = random.random_bits(np, (5,), gen)
    restored = random.Generator(0)
    restored.set_state(load_checkpoint(tmp_path / "c.npz")["rng"])
    np.testing.assert_array_equal(random.random_bits(np, (5,), restored), expected)


def test_device_arrays_are_saved_as_host_copies(tmp_path, backend):
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_checkpoint(tmp_path / "c.npz", weight=backend.array(values))
    loaded = load_checkpoint(tmp_path / "c.npz")["weight"]
    assert type(loaded) is np.ndarray
    assert_identical(values, loaded)


def step_all(model, opt, schedule, gen, steps):
    """A stand-in for training: gradients drawn from ``gen``, then optimizer and schedule."""
    for _ in range(steps):
        for p in model.parameters():
            p.grad = random.normal(np, p.shape, gen)
        opt.step()
        schedule.step()


def make_run(seed):
    gen = random.Generator(seed)
    model = layers.Sequential(layers.Linear(3, 4, generator=gen), layers.ReLU(),
                              layers.Linear(4, 2, generator=gen))
    opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=0.1)
    schedule = optim.LinearWarmup(opt, 2, after=optim.CosineAnnealingLR(opt, T_max=10))
    return model, opt, schedule, gen


def test_training_resumes_bit_identically_from_a_checkpoint(tmp_path):
    model, opt, schedule, gen = make_run(seed=2**63 + 5)
    step_all(model, opt, schedule, gen, 3)
    save_checkpoint(tmp_path / "run.npz", model=model.state_dict(), optimizer=opt.state_dict(),
                    schedule=schedule.state_dict(), rng=gen.get_state(), epoch=3,
                    metrics={"loss": [0.9, 0.7, 0.6]})
    step_all(model, opt, schedule, gen, 3)

    parts = load_checkpoint(tmp_path / "run.npz")
    resumed, resumed_opt, resumed_schedule, resumed_gen = make_run(seed=0)
    resumed.load_state_dict(parts["model"])
    resumed_opt.load_state_dict(parts["optimizer"])
    resumed_schedule.load_state_dict(parts["schedule"])
    resumed_gen.set_state(parts["rng"])
    assert parts["epoch"] == 3 and parts["metrics"] == {"loss": [0.9, 0.7, 0.6]}
    step_all(resumed, resumed_opt, resumed_schedule, resumed_gen, 3)
    for p, q in zip(model.parameters(), resumed.parameters()):
        assert p.numpy().tobytes() == q.numpy().tobytes()
    assert resumed_opt.lr == opt.lr and resumed_gen.get_state() == gen.get_state()


def test_saving_replaces_the_previous_checkpoint_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "last.npz"
    save_checkpoint(path, epoch=1)
    save_checkpoint(str(path), epoch=2)
    assert load_checkpoint(path) == {"epoch": 2}
    assert os.listdir(tmp_path) == ["last.npz"]


def write_half_then_fail(file, **arrays):
    file.write(b"PK\x03\x04 half of a zip")
    raise OSError("No space left on device")


def raising(error):
    def fail(*args, **kwargs):
        raise error
    return fail


@pytest.mark.parametrize("target,name,replacement,error", [
    (np, "savez", write_half_then_fail, OSError),             # crash in the middle of the data
    (os, "fsync", raising(KeyboardInterrupt()), KeyboardInterrupt),   # interrupted before sync
    (os, "replace", raising(PermissionError("busy")), PermissionError),   # rename refused
])
def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch, target, name,
                                                    replacement, error):
    path = tmp_path / "last.npz"
    previous = {"weights": np.arange(5.0), "seed": 2**64 - 1}
    save_checkpoint(path, **previous)
    monkeypatch.setattr(target, name, replacement)
    with pytest.raises(error):
        save_checkpoint(path, weights=np.zeros(5), seed=0)
    monkeypatch.undo()
    assert_identical(previous, load_checkpoint(path))
    assert os.listdir(tmp_path) == ["last.npz"]


def test_truncated_file_gives_an_error_naming_it(tmp_path):
    path = tmp_path / "last.npz"
    save_checkpoint(path, weights=np.arange(100.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*corrupt or truncated"):
        load_checkpoint(path)


def test_flipped_byte_in_array_data_is_detected(tmp_path):
    path = tmp_path / "last.npz"
    weights = np.arange(100.0)
    save_checkpoint(path, weights=weights)
    data = bytearray(path.read_bytes())
    data[data.index(weights.tobytes()) + 400] ^= 0x01    # flip one bit of one float
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


@pytest.mark.parametrize("write", [
    lambda path: path.write_bytes(b""),
    lambda path: path.write_text("not a checkpoint"),
    lambda path: np.savez(path, weights=np.ones(3)),
])
def test_file_that_is_not_a_checkpoint_gives_an_error_naming_it(tmp_path, write):
    path = tmp_path / "other.npz"
    write(path)
    with pytest.raises(CheckpointError, match=re.escape(str(path))):
        load_checkpoint(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nothing.npz")


@pytest.mark.parametrize("parts,match", [
    ({"model": {"w": {1, 2}}}, r"parts\['model'\]\['w'\] is a set"),
    ({"optimizer": {0: np.ones(2)}}, r"parts\['optimizer'\] has the key 0 of type int"),
    ({"ragged": [np.array([None, 1], dtype=object)]}, r"parts\['ragged'\]\[0\] is an object"),
])
def test_unsupported_values_are_rejected_before_writing(tmp_path, parts, match):
    with pytest.raises(TypeError, match=match):
        save_checkpoint(tmp_path / "c.npz", **parts)
    assert os.listdir(tmp_path) == []


def test_checkpoint_is_a_plain_npz_readable_without_pickle(tmp_path):
    save_checkpoint(tmp_path / "c.npz", model={"w": np.ones(2)})
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["a0", checkpoint._MANIFEST]
