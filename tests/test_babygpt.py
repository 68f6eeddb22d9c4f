"""babyGPT (examples/babygpt.py, examples/gpt_model.py) on a tiny model and a tiny text.

Checks: training lowers the loss; estimate_loss measures in eval mode and hands the model
back in train mode; each of the five dropout positions sees exactly the tensor it should;
the sampler never leaves the top-k set or the top-p nucleus, matches the softmax without
filters, becomes greedy as the temperature goes to 0, and repeats itself for a repeated
seed; the whole model gradchecks in train mode (dropout masks fixed by resetting the
counter-based generator); the script trains, resumes bit-identically and refuses bad flags.
"""

import json
import pathlib
import sys

import numpy as np
import pytest
import scipy.stats

import layers
import minigrad
from layers.module import Module
from minigrad.checkpoint import load_checkpoint
from minigrad.random import Generator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
import babygpt  # noqa: E402
from gpt_model import (BabyGPT, Vocabulary, generate, get_batch, reversed_windows,  # noqa: E402
                       sample_next, split)

TEXT = "the quick brown fox jumps over the lazy dog; a lazy cat naps. " * 20
BLOCK = 8


def tiny_model(vocab_size=30, dropout=0.2, device="cpu", dtype=np.float32, seed=0, **kw):
    return BabyGPT(vocab_size, BLOCK, n_layer=2, n_head=2, n_embd=16, dropout=dropout,
                   device=device, dtype=dtype, generator=Generator(seed), **kw)


def tiny_data():
    vocab = Vocabulary(TEXT)
    return vocab, split(vocab.encode(TEXT))


class Recorder(Module):
    """Identity that remembers its input and the mode it was called in."""

    def __init__(self):
        self.seen, self.modes = None, []

    def forward(self, x):
        self.seen = x
        self.modes.append(self.training)
        return x


def test_training_steps_reduce_loss():
    vocab, splits = tiny_data()
    model = tiny_model(len(vocab))
    optimizer = minigrad.optim.AdamW(model.parameters(), lr=1e-2)
    before = babygpt.estimate_loss(model, splits, BLOCK, 16, eval_iters=4)
    generator = Generator(1)
    for _ in range(60):
        x, y = get_batch(splits["train"], BLOCK, 16, generator)
        babygpt.train_step(model, optimizer, x, y, grad_clip=1.0)
    after = babygpt.estimate_loss(model, splits, BLOCK, 16, eval_iters=4)
    assert after["train"] < before["train"] - 1.0
    assert after["val"] < before["val"] - 1.0


def test_estimate_loss_measures_in_eval_mode_and_returns_in_train_mode():
    vocab, splits = tiny_data()
    model = tiny_model(len(vocab))
    spy = Recorder()
    model.blocks[0].ffn.dropout = spy
    model.train()
    first = babygpt.estimate_loss(model, splits, BLOCK, 4, eval_iters=3)
    second = babygpt.estimate_loss(model, splits, BLOCK, 4, eval_iters=3)
    assert spy.modes and not any(spy.modes)        # dropout off while measuring
    assert first == second                         # no dropout noise, same windows
    assert all(m.training for m in model.modules())
    model.eval()
    babygpt.estimate_loss(model, splits, BLOCK, 4, eval_iters=1)
    assert not any(m.training for m in model.modules())   # the mode it came in with


def test_one_dropout_at_each_of_the_five_positions():
    model = tiny_model(dropout=0.3, scaling="classic")
    positions = model.dropout_positions()
    assert list(positions) == ["embedding", "attention weights", "residual after projection",
                               "end of feed-forward", "classifier head"]
    found = [d for group in positions.values() for d in group]
    assert len(found) == 1 + 3 * 2 + 1 and len({id(d) for d in found}) == len(found)
    for d in found:
        assert type(d) is layers.Dropout and d.p == 0.3 and d.scaling == "classic"
    in_model = [m for m in model.modules() if isinstance(m, layers.DropoutLayer)]
    assert {id(m) for m in in_model} == {id(d) for d in found}   # nothing else drops


def test_dropout_zero_leaves_every_dropout_out():
    model = tiny_model(dropout=0.0)
    assert not [m for m in model.modules() if isinstance(m, layers.DropoutLayer)]


def test_each_dropout_sees_the_tensor_its_position_names():
    model = tiny_model(dtype=np.float64)
    spies = {name: Recorder() for name in ("emb", "attn", "resid", "ffn", "head")}
    block = model.blocks[0]
    model.emb_dropout, block.attn.attn_dropout = spies["emb"], spies["attn"]
    block.attn.resid_dropout, block.ffn.dropout = spies["resid"], spies["ffn"]
    model.classifier.dropout = spies["head"]
    idx = np.random.default_rng(0).integers(0, 30, (2, BLOCK))
    model.eval()      # the spies record in any mode; the real dropouts of block 1 stay still
    logits = model.classify(minigrad.Tensor(idx))

    emb = model.tok_emb.weight.numpy()[idx] + model.pos_emb.weight.numpy()[:BLOCK]
    np.testing.assert_allclose(spies["emb"].seen.numpy(), emb)
    weights = spies["attn"].seen.numpy()                      # softmax rows, causal
    assert weights.shape == (2, 2, BLOCK, BLOCK)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)
    assert np.all(np.triu(weights, k=1) == 0)
    h = block.ln1(spies["emb"].seen)
    np.testing.assert_allclose(spies["resid"].seen.numpy(), block.attn(h).numpy())
    x = spies["emb"].seen + spies["resid"].seen
    ffn_in = block.ln2(x)
    expected = block.ffn.proj(block.ffn.act(block.ffn.fc(ffn_in)))
    np.testing.assert_allclose(spies["ffn"].seen.numpy(), expected.numpy())
    features = model.features(minigrad.Tensor(idx)).numpy()[:, -1]
    pooled = np.tanh(features @ model.classifier.dense.weight.numpy().T
                     + model.classifier.dense.bias.numpy())
    np.testing.assert_allclose(spies["head"].seen.numpy(), pooled)
    out = pooled @ model.classifier.out_proj.weight.numpy().T \
        + model.classifier.out_proj.bias.numpy()
    np.testing.assert_allclose(logits.numpy(), out)


def test_train_mode_output_is_random_and_eval_mode_output_is_not():
    model = tiny_model()
    idx = minigrad.Tensor(np.arange(BLOCK)[None, :] % 30)
    with minigrad.no_grad():
        a, b = model(idx).numpy(), model(idx).numpy()
        model.eval()
        c, d = model(idx).numpy(), model(idx).numpy()
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(c, d)


class FixedLogits(Module):
    """A fake language model: the next-token logits depend only on the last token."""

    block_size = 4

    def __init__(self, table):
        self.table = np.asarray(table, dtype=np.float64)
        self.longest, self.modes = 0, []

    def forward(self, idx):
        self.longest = max(self.longest, idx.shape[1])
        self.modes.append(self.training)
        return minigrad.Tensor(self.table[idx.data])


def test_generate_never_samples_outside_the_top_k():
    rng = np.random.default_rng(0)
    table = rng.standard_normal((12, 12)) * 0.3      # flat: without top-k all 12 would appear
    fake = FixedLogits(table)
    out = generate(fake, np.zeros((4, 1), dtype=np.int64), 150, top_k=3,
                   generator=Generator(0))
    top3 = np.argsort(-table, axis=1)[:, :3]
    for row in out:
        for prev, nxt in zip(row[:-1], row[1:]):
            assert nxt in top3[prev]
    assert len(np.unique(out[:, 1:])) > 3            # it does sample, not just argmax
    assert fake.longest <= fake.block_size           # context cropped to block_size
    assert fake.modes and not any(fake.modes) and fake.training


def test_top_k_sampling_covers_exactly_the_k_most_likely():
    logits = np.tile(np.array([0.3, 2.0, -1.0, 1.5, 0.9, 1.7]), (6000, 1))
    picks = sample_next(logits, top_k=3, generator=Generator(1))
    assert set(np.unique(picks)) == {1, 3, 5}


def test_top_p_keeps_the_smallest_nucleus_and_renormalises():
    probs = np.array([0.05, 0.5, 0.1, 0.3, 0.05])
    logits = np.tile(np.log(probs), (4000, 1))
    picks = sample_next(logits, top_p=0.75, generator=Generator(2))
    # 0.5 alone is short of 0.75, 0.5 + 0.3 reaches it: the nucleus is {1, 3}
    assert set(np.unique(picks)) == {1, 3}
    ones = int((picks == 1).sum())
    assert scipy.stats.binomtest(ones, len(picks), 0.5 / 0.8).pvalue > 1e-3
    top = sample_next(logits[:50], top_p=0.3, generator=Generator(3))
    assert np.all(top == 1)                          # the most likely token is always kept


def test_unfiltered_sampling_matches_the_softmax():
    logits = np.array([1.0, 0.0, -1.0, 2.0, 0.5])
    probs = np.exp(logits) / np.exp(logits).sum()
    picks = sample_next(np.tile(logits, (5000, 1)), temperature=1.0, generator=Generator(4))
    counts = np.bincount(picks, minlength=5)
    assert scipy.stats.chisquare(counts, probs * len(picks)).pvalue > 1e-3
    hot = sample_next(np.tile(logits, (5000, 1)), temperature=2.0, generator=Generator(4))
    flatter = np.exp(logits / 2) / np.exp(logits / 2).sum()
    counts = np.bincount(hot, minlength=5)
    assert scipy.stats.chisquare(counts, flatter * len(hot)).pvalue > 1e-3


def test_temperature_towards_zero_approaches_greedy():
    logits = np.random.default_rng(5).standard_normal((3000, 20))
    greedy = logits.argmax(axis=1)
    logits[np.arange(3000), greedy] += 0.1            # a clear winner in every row
    np.testing.assert_array_equal(sample_next(logits, temperature=0), greedy)
    agreement = [(sample_next(logits, temperature=t, generator=Generator(6)) == greedy).mean()
                 for t in (1.0, 0.3, 0.1, 1e-3)]
    assert agreement[0] < agreement[1] < agreement[2] < agreement[3] == 1.0
    assert agreement[0] < 0.5


def test_same_seed_same_sample_and_no_global_rng():
    model = tiny_model()
    prompt = np.zeros((2, 1), dtype=np.int64)
    state = np.random.get_state()[1].copy()
    a = generate(model, prompt, 30, temperature=0.8, top_k=10, generator=Generator(7))
    b = generate(model, prompt, 30, temperature=0.8, top_k=10, generator=Generator(7))
    c = generate(model, prompt, 30, temperature=0.8, top_k=10, generator=Generator(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(np.random.get_state()[1], state)
    assert model.training                             # generate restored the mode


def test_runs_on_every_backend(backend):
    vocab, splits = tiny_data()
    model = tiny_model(len(vocab), device=backend.device)
    optimizer = minigrad.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = get_batch(splits["train"], BLOCK, 4, Generator(0), backend.device)
    loss = babygpt.train_step(model, optimizer, x, y, grad_clip=1.0)
    assert np.isfinite(loss)
    losses = babygpt.estimate_loss(model, splits, BLOCK, 4, eval_iters=1)
    assert np.isfinite(losses["val"])
    out = generate(model, backend.array([[1, 2]], dtype=np.int64), 5, top_k=5, top_p=0.9,
                   generator=Generator(0))
    assert backend.numpy(out).shape == (1, 7)
    x, y = reversed_windows(splits["train"], BLOCK, 4, Generator(0), backend.device)
    assert model.classify(x).shape == (4, 2)


def _gradcheck_in_train_mode(fn_of_model, param_of_model):
    """Gradcheck a float64 tiny model in train mode with all dropouts on.

    The masks come from a counter-based generator: putting its state back before every
    evaluation gives every finite-difference evaluation the very same masks.
    """
    generator = Generator(3)
    model = BabyGPT(11, 5, n_layer=1, n_head=2, n_embd=8, dropout=0.2, dtype=np.float64,
                    generator=generator)
    idx = minigrad.Tensor(np.random.default_rng(0).integers(0, 11, (2, 5)))
    start = generator.get_state()

    def fn(param):
        generator.set_state(start)
        return fn_of_model(model, idx)

    assert minigrad.gradcheck(fn, [param_of_model(model)], fast=True)


def test_language_model_gradchecks_through_all_dropouts():
    _gradcheck_in_train_mode(lambda m, idx: m(idx), lambda m: m.tok_emb.weight)
    _gradcheck_in_train_mode(lambda m, idx: m(idx), lambda m: m.blocks[0].attn.qkv.weight)


def test_classifier_gradchecks_through_its_dropout():
    _gradcheck_in_train_mode(lambda m, idx: m.classify(idx), lambda m: m.classifier.dense.weight)


def test_batches_are_windows_and_their_next_characters():
    data = np.arange(100)
    x, y = get_batch(data, BLOCK, 16, Generator(0))
    np.testing.assert_array_equal(y.numpy(), x.numpy() + 1)
    np.testing.assert_array_equal(np.diff(x.numpy(), axis=1), 1)
    assert x.numpy().min() >= 0 and y.numpy().max() <= 99
    splits = split(data)
    np.testing.assert_array_equal(splits["train"], np.arange(90))
    np.testing.assert_array_equal(splits["val"], np.arange(90, 100))


def test_reversed_windows_are_labelled():
    data = np.arange(1000)
    x, y = reversed_windows(data, BLOCK, 64, Generator(0))
    steps = np.diff(x.numpy(), axis=1)
    np.testing.assert_array_equal(steps[:, 0], np.where(y.numpy() == 1, -1, 1))
    assert 10 < y.numpy().sum() < 54


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="must be positive and divide n_embd"):
        BabyGPT(10, 8, n_head=3, n_embd=16)
    with pytest.raises(ValueError, match="probability of zeroing"):
        BabyGPT(10, 8, dropout=1.0)
    with pytest.raises(ValueError, match="longer than block_size"):
        tiny_model()(minigrad.Tensor(np.zeros((1, BLOCK + 1), dtype=np.int64)))
    logits = np.zeros((1, 4))
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        sample_next(logits, top_k=0)
    with pytest.raises(ValueError, match=r"top_p must lie in \(0, 1\]"):
        sample_next(logits, top_p=1.5)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        sample_next(logits, temperature=-1)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        Vocabulary("abc").encode("abd")


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT)
    return path


def _cli(text_file, out, *extra):
    return ["--text", str(text_file), "--out", str(out), "--block-size", str(BLOCK),
            "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--batch-size", "8",
            "--eval-interval", "4", "--eval-iters", "2", "--classify-steps", "3",
            "--sample-tokens", "20", "--no-progress", "--warmup", "2", *extra]


def test_script_trains_classifies_samples_and_writes_metrics(text_file, tmp_path, capsys):
    summary = babygpt.main(_cli(text_file, tmp_path / "run", "--steps", "8", "--lr", "1e-2"))
    out = capsys.readouterr().out
    assert "train mode:" in out and "eval mode:" in out and "top-p 0.9" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["step"] for h in metrics["epochs"]] == [0, 4, 8]
    assert summary["final_train_loss"] < metrics["epochs"][0]["train_loss"] - 0.3
    assert 0 <= summary["reversed_text_accuracy"] <= 1
    assert len(summary["samples"]["top_k"]) == 1 + 20
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["gap"] == summary["gap"]


def test_resume_after_sigterm_is_bit_identical(text_file, tmp_path, sigterm_at_step):
    args = ("--steps", "8", "--classify-steps", "0")
    babygpt.main(_cli(text_file, tmp_path / "full", *args))
    disarm = sigterm_at_step(6)
    with pytest.raises(SystemExit) as stop:
        babygpt.main(_cli(text_file, tmp_path / "cut", *args))
    assert stop.value.code == 130
    assert load_checkpoint(str(tmp_path / "cut" / "checkpoint.npz"))["step"] == 6
    disarm()
    babygpt.main(_cli(text_file, tmp_path / "cut", *args, "--resume"))
    full = load_checkpoint(str(tmp_path / "full" / "checkpoint.npz"))
    cut = load_checkpoint(str(tmp_path / "cut" / "checkpoint.npz"))
    for name, value in full["model"].items():
        assert np.array_equal(value, cut["model"][name]), name


def test_sample_only_rebuilds_the_trained_model_from_its_checkpoint(text_file, tmp_path):
    args = _cli(text_file, tmp_path / "run", "--steps", "4", "--classify-steps", "0")
    trained = babygpt.main(args)["samples"]
    again = babygpt.main(args + ["--sample-only"])["samples"]
    assert again == trained                            # same weights, same sampling seed
    other = babygpt.main(args + ["--sample-only", "--sample-seed", "2"])["samples"]
    assert other["top_k"] != trained["top_k"]
    with pytest.raises(SystemExit, match="no checkpoint"):
        babygpt.main(_cli(text_file, tmp_path / "empty", "--sample-only"))


def test_script_refuses_bad_flags(text_file, tmp_path):
    with pytest.raises(SystemExit, match="probability of dropping"):
        babygpt.main(_cli(text_file, tmp_path / "bad", "--dropout", "1.5"))
    with pytest.raises(SystemExit, match="top_p must lie"):
        babygpt.main(_cli(text_file, tmp_path / "bad", "--top-p", "0"))
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(SystemExit, match="needs at least"):
        babygpt.main(_cli(short, tmp_path / "bad"))


def test_builtin_corpus_is_the_project_itself():
    files = babygpt.corpus_files("all")
    names = {p.name for p in files}
    assert "gradcheck.py" in names and "dropout.py" in names
    assert all(p.suffix in (".py", ".md") for p in files)
