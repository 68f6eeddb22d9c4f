"""The scripts behind docs/dropout.md: the mask-memory tables and the dropout-family pictures.

mask_memory.py runs real models at tiny sizes here, and its byte counts must be exactly the
number of mask elements ("bytes"), ceil(elements / 8) per mask ("bits") and 0 ("seed"), as
the formula says. make_dropout_figures.py must draw masks of the advertised shapes with the
advertised structure; the PNGs are only written when matplotlib is installed.
"""

import math
import pathlib
import sys

import numpy as np
import pytest
from scipy import stats

from layers.dropout_noise import ALPHA_PRIME, alpha_dropout_affine
from minigrad import Tensor
from minigrad.random import Generator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "docs"))
import make_dropout_figures as figures  # noqa: E402
import mask_memory  # noqa: E402


def expected_bytes(elements):
    """Independent of mask_memory's formula: n bytes, ceil(n / 8) bytes, nothing."""
    return {"bytes": elements, "bits": math.ceil(elements / 8), "seed": 0}


def test_mlp_mask_bytes_are_elements_bits_and_zero_per_mode():
    batch, sizes = 5, (20, 13, 11, 3)   # 65 and 55 elements: not multiples of 8
    results = mask_memory.measure_mlp(batch, sizes=sizes, ps=(0.2, 0.5, 0.5))
    for mode in mask_memory.MODES:
        got = results[mode]
        assert got.per_site["input"] == 0   # the input needs no gradient: no mask kept
        assert got.per_site["hidden 1"] == expected_bytes(batch * 13)[mode]
        assert got.per_site["hidden 2"] == expected_bytes(batch * 11)[mode]
        assert got.total == got.per_site["hidden 1"] + got.per_site["hidden 2"]
    assert results["bits"].per_site["hidden 1"] == 9


def test_transformer_mask_bytes_are_elements_bits_and_zero_per_mode():
    batch, seq, d_model, heads = 2, 5, 8, 2
    results = mask_memory.measure_transformer(batch, seq, d_model, heads)
    tokens, attention = batch * seq * d_model, batch * heads * seq * seq   # 80 and 100
    for mode in mask_memory.MODES:
        got = results[mode]
        for name in ("embedding", "attention output", "feed-forward output"):
            assert got.per_site[name] == expected_bytes(tokens)[mode], (name, mode)
        assert got.per_site["attention weights"] == expected_bytes(attention)[mode]
        assert got.total == 3 * expected_bytes(tokens)[mode] + expected_bytes(attention)[mode]
    assert results["bits"].per_site["attention weights"] == 13


def test_formula_agrees_with_measurement():
    mlp = mask_memory.measure_mlp(6, sizes=(10, 9, 7, 2), ps=(0.2, 0.5, 0.5))
    mask_memory.check_against_formula(mask_memory.mlp_sites(6, (10, 9, 7, 2)), mlp)
    sites = mask_memory.transformer_sites(3, 4, 8, 2)
    mask_memory.check_against_formula(sites, mask_memory.measure_transformer(3, 4, 8, 2))
    assert [mask_memory.formula_bytes(s, "bits") for s in sites] == [12, 12, 12, 12]


def test_formula_check_fails_on_a_wrong_measurement():
    sites = mask_memory.transformer_sites(1, 2, 4, 1)
    results = mask_memory.measure_transformer(1, 2, 4, 1)
    bad = results["bits"]._replace(per_site={**results["bits"].per_site, "embedding": 8})
    with pytest.raises(AssertionError, match="embedding"):
        mask_memory.check_against_formula(sites, {**results, "bits": bad})


def test_graph_activation_bytes_counts_views_once_and_skips_parameters():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = x.reshape(3, 2) * 2.0          # the reshape shares x's buffer
    assert mask_memory.graph_activation_bytes(y) == 2 * 24
    model, _ = mask_memory.build_mlp("bytes", Generator(0), sizes=(4, 3, 2), ps=(0.0, 0.5))
    out = model(Tensor(np.ones((5, 4), np.float32)))
    # The input dropout records no op (nothing before it needs a gradient), so the graph
    # starts at its output: dropout, linear, relu, dropout, linear = 20 + 15 + 15 + 15 + 10.
    assert mask_memory.graph_activation_bytes(out) == 4 * (20 + 15 + 15 + 15 + 10)


def test_large_model_table_counts_the_embedding_once():
    _, totals = mask_memory.site_table(
        mask_memory.transformer_sites(1, 4096, 8192, 64),
        count=lambda s: 1 if s.name == "embedding" else 80)
    tokens = 4096 * 8192
    elements = 80 * (64 * 4096 ** 2 + 2 * tokens) + tokens
    assert totals[:4] == [elements, elements, elements // 8, 0]
    assert totals[4] == 4 * elements


def test_mask_memory_quick_run_prints_four_tables(capsys):
    assert mask_memory.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert out.count("| **total** |") == 4
    assert "| hidden 1 | 0.5 | (128, 1024) | 131,072 | 128.0 KiB | 16.0 KiB | 0 B |" in out


@pytest.fixture(scope="module")
def pictures():
    return {p.name: p for p in figures.family_masks()}


def test_same_seed_same_masks(pictures):
    again = figures.family_masks()
    assert [p.name for p in again] == list(pictures)
    for p in again:
        np.testing.assert_array_equal(p.grid, pictures[p.name].grid)
    other = {p.name: p.grid for p in figures.family_masks(seed=1)}
    assert not np.array_equal(other["dropout"], pictures["dropout"].grid)


def test_every_member_has_a_picture(pictures):
    assert set(pictures) == {
        "dropout", "dropout2d", "token_dropout", "locked_dropout", "drop_path",
        "dropblock2d_block3", "dropblock2d_block4", "dropconnect_linear", "gaussian_dropout",
        "alpha_dropout"}


def test_bernoulli_masks_are_zero_or_one_over_keep(pictures):
    for name in ("dropout", "dropout2d", "token_dropout", "locked_dropout", "drop_path",
                 "dropconnect_linear"):
        values = np.unique(pictures[name].grid)
        assert set(values) <= {0.0, 2.0}, name
        assert values.size == 2, f"{name}: the picture should show kept and dropped elements"


def test_masks_are_constant_along_the_shared_axes(pictures):
    assert pictures["dropout2d"].mask_shape == (4, 3, 1, 1)
    grid = pictures["dropout2d"].grid                        # (N, C, H, W)
    assert (grid == grid[:, :, :1, :1]).all()               # one value per channel
    assert pictures["drop_path"].mask_shape == (4, 1, 1, 1)
    grid = pictures["drop_path"].grid
    assert (grid == grid[:, :1, :1, :1]).all()              # one value per sample
    assert pictures["token_dropout"].mask_shape == (4, 16, 1)
    grid = pictures["token_dropout"].grid                    # (2, 2, T, D)
    assert (grid == grid[..., :1]).all()                    # one value per token
    assert pictures["locked_dropout"].mask_shape == (4, 1, 16)
    grid = pictures["locked_dropout"].grid
    assert (grid == grid[:, :, :1, :]).all()                # one value per feature, all steps
    assert pictures["dropout"].mask_shape == (4, 3, 16, 16)
    assert pictures["dropconnect_linear"].grid.shape == (1, 1, 12, 16)   # (out, in) weights


@pytest.mark.parametrize("block", [3, 4])
def test_dropblock_drops_whole_squares_and_rescales_by_kept_fraction(pictures, block):
    grid = pictures[f"dropblock2d_block{block}"].grid
    dropped = grid == 0
    covered = np.zeros_like(dropped)
    height, width = dropped.shape[2:]
    for i in range(height - block + 1):
        for j in range(width - block + 1):
            square = dropped[:, :, i:i + block, j:j + block].all(axis=(2, 3))
            covered[:, :, i:i + block, j:j + block] |= square[:, :, None, None]
    np.testing.assert_array_equal(covered, dropped)   # every zero lies in a zeroed square
    assert dropped.any()
    np.testing.assert_allclose(grid[~dropped], grid.size / (~dropped).sum(), rtol=1e-6)


def test_gaussian_noise_has_mean_one_and_variance_p_over_keep(pictures):
    noise = pictures["gaussian_dropout"].grid.ravel()
    assert (noise != 0).all()
    # p = 0.5: N(1, 1). Deterministic draw; a wrong mean or scale gives p-values near 0.
    assert stats.ttest_1samp(noise, 1.0).pvalue > 1e-3
    statistic = (noise.size - 1) * noise.var(ddof=1)   # chi2(n - 1) when the variance is 1
    chi2 = stats.chi2(noise.size - 1)
    assert 2 * min(chi2.sf(statistic), chi2.cdf(statistic)) > 1e-3


def test_alpha_dropout_takes_the_two_affine_values(pictures):
    a, b = alpha_dropout_affine(0.5)
    values = np.unique(pictures["alpha_dropout"].grid)
    np.testing.assert_allclose(values, [a * ALPHA_PRIME + b, a + b], rtol=1e-6)


def test_tile_leaves_nan_gaps_between_tiles():
    image = figures.tile(np.ones((2, 3, 4, 5)))
    assert image.shape == (2 * 4 + 1, 3 * 5 + 2)
    assert np.isnan(image[4]).all() and np.isnan(image[:, 5]).all()
    assert np.nansum(image) == 2 * 3 * 4 * 5


def test_figures_script_without_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import matplotlib -> ImportError
    with pytest.raises(SystemExit, match=r"pip install -e \.\[plot\]"):
        figures.main(["--out", str(tmp_path)])


def test_figures_are_written_small(tmp_path):
    pytest.importorskip("matplotlib")
    paths = figures.write_figures(tmp_path)
    expected = [f"{p.name}.png" for p in figures.family_masks()] + ["dropout_family.png"]
    assert [p.name for p in paths] == expected
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 150 * 1024, path.name
