"""The MNIST MLP example end to end, on tiny synthetic IDX files (no network, seconds).

Checks what a user relies on: it trains and writes metrics and a checkpoint; an interrupted
run resumed with --resume ends with weights bit-identical to an uninterrupted run, both after
a graceful interrupt (SIGTERM mid-epoch) and after a hard kill (only the last end-of-epoch
checkpoint survives); a diverging loss stops the run with a clear message.
"""

import json
import os
import pathlib
import sys

import numpy as np
import pytest

from minigrad.checkpoint import load_checkpoint

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import mnist_mlp  # noqa: E402


def _args(data_dir, out, *extra):
    return ["--data-dir", str(data_dir), "--out", str(out), "--batch-size", "16",
            "--hidden", "32", "--no-progress", "--lr", "0.1", *extra]


def _weights(out):
    return load_checkpoint(os.path.join(out, "checkpoint.npz"))["model"]


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs"


def test_training_writes_metrics_and_checkpoint_and_learns(data_dir, tmp_path):
    history = mnist_mlp.main(_args(data_dir, tmp_path / "run", "--epochs", "8"))
    assert len(history) == 8
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.5        # chance is 0.1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 9))
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,train_loss")
    assert load_checkpoint(str(tmp_path / "run" / "checkpoint.npz"))["epoch"] == 8


def test_resume_after_sigterm_mid_epoch_is_bit_identical(data_dir, tmp_path,
                                                         sigterm_at_step):
    mnist_mlp.main(_args(data_dir, tmp_path / "full", "--epochs", "3"))

    disarm = sigterm_at_step(9)     # batch 3 of epoch 2 (6 batches per epoch)
    with pytest.raises(SystemExit) as stop:
        mnist_mlp.main(_args(data_dir, tmp_path / "cut", "--epochs", "3"))
    assert stop.value.code == 130
    state = load_checkpoint(str(tmp_path / "cut" / "checkpoint.npz"))
    assert (state["epoch"], state["loader"]["position"]) == (1, 3)
    disarm()

    history = mnist_mlp.main(_args(data_dir, tmp_path / "cut", "--epochs", "3", "--resume"))
    _assert_same_weights(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())["epochs"]
    for a, b in zip(full, history):
        assert a["train_loss"] == b["train_loss"] and a["test_acc"] == b["test_acc"]


def test_resume_after_hard_kill_repeats_the_lost_epoch_exactly(data_dir, tmp_path):
    mnist_mlp.main(_args(data_dir, tmp_path / "full", "--epochs", "3"))
    # A hard kill during epoch 3 leaves the end-of-epoch-2 checkpoint: the same as a run
    # that stopped after 2 epochs.
    mnist_mlp.main(_args(data_dir, tmp_path / "cut", "--epochs", "2"))
    mnist_mlp.main(_args(data_dir, tmp_path / "cut", "--epochs", "3", "--resume"))
    _assert_same_weights(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))


def test_diverging_loss_stops_with_a_clear_message(data_dir, tmp_path):
    with pytest.raises(SystemExit, match="training loss became"):
        mnist_mlp.main(_args(data_dir, tmp_path / "nan", "--epochs", "2", "--lr", "1e30"))


def test_classic_scaling_and_bit_packed_masks_train_too(data_dir, tmp_path):
    history = mnist_mlp.main(_args(data_dir, tmp_path / "classic", "--epochs", "2",
                                   "--scaling", "classic", "--memory", "bits"))
    assert np.isfinite(history[-1]["train_loss"])


def test_runs_on_the_strict_backend_without_hidden_host_copies(data_dir, tmp_path):
    history = mnist_mlp.main(_args(data_dir, tmp_path / "strict", "--epochs", "1",
                                   "--device", "strict", "--momentum", "0.9",
                                   "--max-norm", "3"))
    assert np.isfinite(history[-1]["test_loss"])


def test_bad_dropout_probability_is_refused(data_dir, tmp_path):
    with pytest.raises(SystemExit, match="probability of dropping"):
        mnist_mlp.main(_args(data_dir, tmp_path / "bad", "--p", "1.5"))


def test_cosine_schedule_decays_the_learning_rate_and_resumes_exactly(data_dir, tmp_path,
                                                                      sigterm_at_step):
    flags = ("--epochs", "4", "--schedule", "cosine")
    full = mnist_mlp.main(_args(data_dir, tmp_path / "full", *flags))
    # lr used in epoch e (1-based) of 4: 0.1 * (1 + cos(pi * (e - 1) / 4)) / 2
    expected = [0.1 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]
    assert np.allclose([h["lr"] for h in full], expected)

    disarm = sigterm_at_step(16)    # batch 4 of epoch 3: the schedule has stepped twice
    with pytest.raises(SystemExit):
        mnist_mlp.main(_args(data_dir, tmp_path / "cut", *flags))
    disarm()
    mnist_mlp.main(_args(data_dir, tmp_path / "cut", *flags, "--resume"))
    _assert_same_weights(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
