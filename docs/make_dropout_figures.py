"""Draw the mask that each member of the dropout family puts on a feature map.

    pip install -e .[plot]                   # matplotlib, an optional extra
    python docs/make_dropout_figures.py      # writes docs/figures/*.png

Every picture comes from the real layer in ``layers``, in training mode, with
``minigrad.random.Generator(0)``, applied to an input of ones: its output is then exactly what
the layer multiplies each element by (0 where dropped, 1/(1-p) where kept, or the noise).
Same seed, same pictures. ``family_masks`` computes the arrays without matplotlib.
"""

import argparse
import pathlib
import sys
import textwrap
from typing import NamedTuple

import numpy as np

from layers import (AlphaDropout, DropBlock2d, DropConnectLinear, DropPath, Dropout, Dropout2d,
                    GaussianDropout, LockedDropout, TokenDropout)
from minigrad import Tensor
from minigrad.random import Generator

SEED = 0
FEATURE_MAP = (4, 3, 16, 16)   # (N, C, H, W): 4 samples x 3 channels of 16x16
SEQUENCE = (4, 16, 16)         # (N, T, D): 4 sequences of 16 tokens with 16 features
FIGURES = pathlib.Path(__file__).resolve().parent / "figures"


class MaskPicture(NamedTuple):
    """One layer's multiplier, laid out as a grid of tiles: (rows, cols, height, width)."""

    name: str            # file stem of the PNG
    title: str           # the layer as constructed
    layer: object        # the layer itself (its mask_shape, p, ...)
    x_shape: tuple       # the input it was applied to
    mask_shape: tuple    # the shape of the mask it drew
    grid: np.ndarray     # what each input element was multiplied by, as tiles
    layout: str          # what the tile rows, columns and pixels are
    caption: str         # what the picture shows


def multiplier(layer, x_shape):
    """The layer's training-mode output on ones of ``x_shape``: its per-element multiplier."""
    layer.train()
    return layer(Tensor(np.ones(x_shape, dtype=np.float32))).numpy()


def is_mask(grid):
    """True for a 0/1 mask times a scale: at most two values, the smaller one 0."""
    return np.unique(grid).size <= 2 and grid.min() == 0


def summary(grid):
    """The realised numbers: the dropped fraction and the values, or the noise's moments."""
    values = np.unique(grid)
    if values.size > 2:
        return f"noise mean {grid.mean():.3f}, standard deviation {grid.std():.3f}"
    low, high = values[0], values[-1]
    dropped = f"{(grid == low).mean():.0%} dropped"
    if is_mask(grid):
        return f"{dropped} (black, 0), the rest scaled by {high:.3g} (white)"
    return f"{dropped} (set to {low:.3f}), the rest set to {high:.3f}"


def _picture(name, layer, x_shape, mask_shape, grid, layout, what, applied=None, kind="mask"):
    block = getattr(layer, "block_size", None)
    title = f"{type(layer).__name__}(p={layer.p}" + (f", block_size={block})" if block else ")")
    applied = applied or f"on ones {x_shape}, {kind}"
    caption = f"{title} {applied} {mask_shape}: {what}; {summary(grid)}."
    return MaskPicture(name, title, layer, x_shape, tuple(mask_shape), grid, layout, caption)


def _maps(name, layer, what, x_shape=FEATURE_MAP, kind="mask"):
    """A layer on (N, C, H, W) maps: one tile per (sample, channel)."""
    values = multiplier(layer, x_shape)
    return _picture(name, layer, x_shape, layer.mask_shape(x_shape), values,
                    "a row per sample, a column per channel, each H x W", what, kind=kind)


def _sequences(name, layer, what, x_shape=SEQUENCE):
    """A layer on (N, T, D) sequences: one tile per sample, tokens down, features across."""
    values = multiplier(layer, x_shape)
    grid = values.reshape((2, -1) + values.shape[1:])   # (N, T, D) -> (2, N/2, T, D)
    return _picture(name, layer, x_shape, layer.mask_shape(x_shape), grid,
                    "one per sample, row by row, tokens t down, features d across", what)


def _dropconnect(p, generator, n_in=16, n_out=12):
    """DropConnectLinear's weight multiplier M * s, read through the real forward.

    With every weight set to 1, no bias, and the identity as the batch, y = I @ (M * 1 * s)^T,
    so y^T is the (out, in) weight multiplier of this forward pass.
    """
    layer = DropConnectLinear(n_in, n_out, p=p, bias=False, generator=generator)
    layer.weight.data[...] = 1.0
    layer.train()
    weights = layer(Tensor(np.eye(n_in, dtype=np.float32))).numpy().T
    return _picture("dropconnect_linear", layer, (n_in, n_in), (n_out, n_in),
                    weights[None, None], "one, outputs down, inputs across",
                    "one mask over the weight matrix, shared by every sample of the batch",
                    applied=f"with unit weights on the identity {(n_in, n_in)}, weight mask")


def family_masks(seed=SEED):
    """The multiplier of every family member, drawn by the real layers in turn.

    The layers share one generator, as the layers of a model do, so each draws its own stream.
    """
    generator = Generator(seed)

    def gen():
        return generator

    return [
        _maps("dropout", Dropout(0.5, generator=gen()), "every element kept or zeroed alone"),
        _maps("dropout2d", Dropout2d(0.5, generator=gen()),
              "each channel of each sample kept or zeroed as a whole"),
        _sequences("token_dropout", TokenDropout(0.5, generator=gen()),
                   "whole tokens (rows of a tile) zeroed"),
        _sequences("locked_dropout", LockedDropout(0.5, generator=gen()),
                   "the same features (columns) zeroed at every time step of a sequence"),
        _maps("drop_path", DropPath(0.5, generator=gen()),
              "whole samples (rows) zeroed: their residual branch is skipped"),
        _maps("dropblock2d_block3", DropBlock2d(0.2, block_size=3, generator=gen()),
              "3x3 squares zeroed, the rest scaled by numel / kept"),
        _maps("dropblock2d_block4", DropBlock2d(0.2, block_size=4, generator=gen()),
              "4x4 squares zeroed, the rest scaled by numel / kept"),
        _dropconnect(0.5, generator),
        _maps("gaussian_dropout", GaussianDropout(0.5, generator=gen()),
              "no zeros: every element times noise N(1, p/(1-p))", kind="noise"),
        _maps("alpha_dropout", AlphaDropout(0.5, generator=gen()),
              "dropped units go to a*alpha' + b, kept ones to a*1 + b"),
    ]


def tile(grid, gap=1):
    """Lay a (rows, cols, h, w) grid out as one image, tiles separated by NaN gaps."""
    rows, cols, h, w = grid.shape
    image = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(cols):
            image[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = grid[r, c]
    return image


def draw(ax, picture, plt, colorbar=True):
    """Draw ``picture`` on ``ax``: masks in gray (black = 0), noise in a colour map."""
    binary = is_mask(picture.grid)
    cmap = plt.get_cmap("gray" if binary else "viridis").with_extremes(
        bad="#5b9bd5" if binary else "white")   # bad = the NaN gaps between tiles
    vmax = max(float(picture.grid.max()), 1.0)
    image = ax.imshow(tile(picture.grid), cmap=cmap, interpolation="nearest",
                      vmin=0.0 if binary else None, vmax=vmax if binary else None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(picture.title, fontsize=9)
    if colorbar and not binary:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return image


def save(fig, path):
    fig.savefig(path, dpi=100, metadata={"Software": None})   # no version stamp: same bytes


def write_figures(out_dir=FIGURES, seed=SEED):
    """Write one PNG per family member and an overview; return the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures, paths = family_masks(seed), []
    for picture in pictures:
        fig, ax = plt.subplots(figsize=(4.2, 4.6))
        draw(ax, picture, plt)
        text = f"{picture.caption} Tiles: {picture.layout}. Seed {seed}."
        fig.text(0.5, 0.02, textwrap.fill(text, 62), ha="center", va="bottom", fontsize=8)
        fig.subplots_adjust(bottom=0.25, top=0.93)
        paths.append(out_dir / f"{picture.name}.png")
        save(fig, paths[-1])
        plt.close(fig)

    fig, axes = plt.subplots(2, 5, figsize=(13, 6))
    for ax, picture in zip(axes.flat, pictures):
        draw(ax, picture, plt, colorbar=False)
        ax.set_xlabel(f"mask {picture.mask_shape}", fontsize=8)
    fig.suptitle(f"The dropout family on inputs of ones (seed {seed}): black = dropped",
                 fontsize=11)
    fig.tight_layout()
    paths.append(out_dir / "dropout_family.png")
    save(fig, paths[-1])
    plt.close(fig)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(FIGURES), help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed (default: 0)")
    args = parser.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("make_dropout_figures.py needs matplotlib, an optional extra: "
                 "pip install -e .[plot]  (or: pip install matplotlib)")
    for path in write_figures(args.out, args.seed):
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
