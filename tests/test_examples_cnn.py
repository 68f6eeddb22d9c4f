"""The CNN (spatial dropout) and residual MLP (DropPath) examples on tiny synthetic IDX data.

Each trains in seconds with no network: the CNN on numpy and on the strict device, a CNN run
interrupted by SIGTERM mid-epoch and resumed ends bit-identical to an uninterrupted one, the
spatial dropouts mask what docs/cnn.md says they mask, and the residual MLP's measured
effective depth matches sum_l (1 - rate_l).
"""

import itertools
import json
import os
import pathlib
import sys

import numpy as np
import pytest
from scipy import stats

import minigrad
from layers.dropout import Dropout, Dropout2d
from layers.dropout_structured import DropBlock2d
from minigrad.checkpoint import load_checkpoint

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import mnist_cnn  # noqa: E402
import residual_mlp  # noqa: E402


def _cnn_args(data_dir, out, *extra):
    return ["--data-dir", str(data_dir), "--out", str(out), "--batch-size", "16",
            "--channels", "4", "8", "--hidden", "16", "--no-progress", "--lr", "0.05",
            "--p", "0.2", *extra]


def _mlp_args(data_dir, out, *extra):
    return ["--data-dir", str(data_dir), "--out", str(out), "--batch-size", "16",
            "--width", "16", "--no-progress", "--lr", "0.01", *extra]


def _weights(out):
    return load_checkpoint(os.path.join(out, "checkpoint.npz"))["model"]


@pytest.mark.parametrize("spatial", ["dropout2d", "dropblock"])
def test_cnn_trains_and_learns(data_dir, tmp_path, spatial):
    history = mnist_cnn.main(_cnn_args(data_dir, tmp_path / "run", "--epochs", "10",
                                       "--spatial", spatial))
    assert len(history) == 10
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.5        # chance is 0.1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["spatial"] == spatial


@pytest.mark.parametrize("spatial", ["dropout2d", "dropblock"])
def test_cnn_runs_on_the_strict_backend_without_hidden_host_copies(data_dir, tmp_path,
                                                                   spatial):
    history = mnist_cnn.main(_cnn_args(data_dir, tmp_path / "strict", "--epochs", "1",
                                       "--device", "strict", "--spatial", spatial,
                                       "--batch-norm", "--max-norm", "3"))
    assert np.isfinite(history[-1]["test_loss"])


def test_cnn_resume_after_sigterm_mid_epoch_is_bit_identical(data_dir, tmp_path,
                                                             sigterm_at_step):
    extra = ("--epochs", "3", "--spatial", "dropblock", "--batch-norm")
    mnist_cnn.main(_cnn_args(data_dir, tmp_path / "full", *extra))

    disarm = sigterm_at_step(9)     # batch 3 of epoch 2 (6 batches per epoch)
    with pytest.raises(SystemExit) as stop:
        mnist_cnn.main(_cnn_args(data_dir, tmp_path / "cut", *extra))
    assert stop.value.code == 130
    state = load_checkpoint(str(tmp_path / "cut" / "checkpoint.npz"))
    assert (state["epoch"], state["loader"]["position"]) == (1, 3)
    disarm()

    mnist_cnn.main(_cnn_args(data_dir, tmp_path / "cut", *extra, "--resume"))
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert full.keys() == cut.keys()
    assert any("running_mean" in name for name in full)     # BatchNorm buffers included
    for name in full:
        assert np.array_equal(full[name], cut[name]), f"{name} differs"


def test_dropout2d_zeroes_whole_channels_of_each_feature_map():
    model = mnist_cnn.build_cnn((6, 8), 16, "dropout2d", 0.5, p=0.5,
                                generator=minigrad.Generator(1))
    h = minigrad.Tensor(np.random.default_rng(0).standard_normal((5, 28, 28), np.float32))
    shapes = []
    for layer in model.layers:
        y = layer(h)
        if isinstance(layer, Dropout2d):
            before, after = h.numpy(), y.numpy()
            shapes.append(after.shape)
            dropped = (after == 0).all(axis=(2, 3)) & (before != 0).any(axis=(2, 3))
            kept = np.isclose(after, before / 0.5, rtol=1e-6).all(axis=(2, 3))
            assert np.all(dropped ^ kept)        # each channel: all dropped or all kept
            assert dropped.any() and kept.any()
        h = y
    assert shapes == [(5, 6, 14, 14), (5, 8, 7, 7)]
    assert sum(type(m) is Dropout for m in model.layers) == 1


def test_dropblock_zeroes_square_blocks_and_keeps_the_mean():
    generator = minigrad.Generator(2)
    model = mnist_cnn.build_cnn((6, 8), 16, "dropblock", 0.3, block_size=3, generator=generator)
    blocks = [layer for layer in model.layers if isinstance(layer, DropBlock2d)]
    assert len(blocks) == 2 and all(b.block_size == 3 for b in blocks)
    x = minigrad.Tensor(np.ones((4, 6, 14, 14), np.float32))
    y = blocks[0](x).numpy()
    dropped = y == 0
    # every dropped pixel lies in a fully dropped 3x3 square
    for n, c, i, j in zip(*np.nonzero(dropped)):
        assert any(dropped[n, c, a:a + 3, b:b + 3].all()
                   for a, b in itertools.product(range(max(0, i - 2), min(12, i + 1)),
                                                 range(max(0, j - 2), min(12, j + 1))))
    assert y.mean() == pytest.approx(1.0, rel=1e-5)   # inverted: rescaled by the kept share


def test_eval_mode_is_deterministic_and_train_mode_is_not():
    model = mnist_cnn.build_cnn((4, 8), 16, "dropblock", 0.5, generator=minigrad.Generator(0))
    x = minigrad.Tensor(np.random.default_rng(1).standard_normal((3, 28, 28), np.float32))
    model.eval()
    with minigrad.no_grad():
        assert np.array_equal(model(x).numpy(), model(x).numpy())
    model.train()
    assert not np.array_equal(model(x).numpy(), model(x).numpy())


def test_spatial_none_builds_no_spatial_dropout():
    model = mnist_cnn.build_cnn((4, 8), 16, "none", 0.5, p=0.0)
    assert not any(isinstance(m, (Dropout, Dropout2d, DropBlock2d)) for m in model.modules())
    with pytest.raises(ValueError, match="spatial must be one of"):
        mnist_cnn.build_cnn(spatial="pixels")


@pytest.mark.parametrize("flags, message", [
    (("--spatial-p", "1.5"), "probability of dropping"),
    (("--p", "-0.1"), "probability of dropping"),
    (("--spatial", "dropblock", "--block-size", "9"), "block-size must lie in"),
    (("--channels", "0", "8"), "must be positive"),
])
def test_bad_cnn_flags_are_refused_with_a_clear_message(data_dir, tmp_path, flags, message):
    with pytest.raises(SystemExit, match=message):
        mnist_cnn.main(_cnn_args(data_dir, tmp_path / "bad", *flags))


def test_residual_mlp_trains_and_learns(data_dir, tmp_path):
    history = residual_mlp.main(_mlp_args(data_dir, tmp_path / "run", "--epochs", "6",
                                          "--depth", "4", "--drop-path", "0.2"))
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["test_acc"] > 0.5


def test_residual_mlp_runs_on_the_strict_backend(data_dir, tmp_path):
    history = residual_mlp.main(_mlp_args(data_dir, tmp_path / "strict", "--epochs", "1",
                                          "--depth", "3", "--device", "strict"))
    assert np.isfinite(history[-1]["test_loss"])


def test_measured_effective_depth_matches_sum_of_keep_rates(data_dir, tmp_path, capsys):
    depth, max_rate, epochs = 6, 0.5, 4
    model, _, _ = residual_mlp.train(_mlp_args(
        data_dir, tmp_path / "depth", "--epochs", str(epochs), "--depth", str(depth),
        "--drop-path", str(max_rate)))
    rates = [max_rate * i / (depth - 1) for i in range(depth)]
    expected = sum(1 - r for r in rates)
    assert model.expected_depth() == pytest.approx(expected)
    counts = np.concatenate(model.blocks_passed)
    assert len(counts) == epochs * 96          # every training sample of every epoch
    assert counts.min() >= 1                   # block 0 has rate 0: never skipped
    assert counts.max() <= depth
    # The count is a sum of independent Bernoulli(1 - rate) draws: variance sum r (1 - r).
    # z-test of the mean; tolerance: reject only beyond p = 1e-4 (|z| > 3.9).
    std_of_mean = np.sqrt(sum(r * (1 - r) for r in rates) / len(counts))
    z = (counts.mean() - expected) / std_of_mean
    assert 2 * stats.norm.sf(abs(z)) > 1e-4, f"mean {counts.mean():.3f} vs {expected:.3f}"
    assert counts.mean() < depth - 0.5          # DropPath did skip blocks
    report = capsys.readouterr().out
    assert f"expected {expected:.3f} of {depth} blocks" in report
    assert report.count("measured mean") == epochs


def test_without_drop_path_every_sample_passes_every_block(data_dir, tmp_path):
    model, _, _ = residual_mlp.train(_mlp_args(data_dir, tmp_path / "nodrop", "--epochs", "1",
                                               "--depth", "3", "--drop-path", "0"))
    assert np.all(np.concatenate(model.blocks_passed) == 3)


def test_evaluation_passes_every_block_and_records_no_depth():
    model = residual_mlp.ResidualMLP(depth=4, width=8, max_rate=0.9, n_in=5,
                                     generator=minigrad.Generator(0))
    x = minigrad.Tensor(np.random.default_rng(0).standard_normal((7, 5), np.float32))
    model.eval()
    with minigrad.no_grad():
        assert np.array_equal(model(x).numpy(), model(x).numpy())
    assert model.blocks_passed == []
    model.train()
    model(x)
    assert len(model.blocks_passed) == 1 and model.blocks_passed[0].shape == (7,)


def test_depth_distribution_matches_enumeration_over_all_masks():
    rates = [0.0, 0.25, 0.5, 0.9]
    probs = residual_mlp.depth_distribution(rates)
    brute = np.zeros(len(rates) + 1)
    for kept in itertools.product([0, 1], repeat=len(rates)):
        brute[sum(kept)] += np.prod([1 - r if k else r for k, r in zip(kept, rates)])
    assert np.allclose(probs, brute)
    assert probs @ np.arange(len(probs)) == pytest.approx(sum(1 - r for r in rates))


def test_bad_drop_path_rate_is_refused(data_dir, tmp_path):
    with pytest.raises(SystemExit, match="must lie in"):
        residual_mlp.main(_mlp_args(data_dir, tmp_path / "bad", "--drop-path", "1.0"))
