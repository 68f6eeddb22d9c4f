"""MNIST, Fashion-MNIST and KMNIST: found locally or downloaded, always verified.

    images, labels = load_dataset("fashion-mnist", train=True)

returns uint8 images (N, 28, 28) and int64 labels (N,). Names: "mnist", "fashion-mnist",
"kmnist", and "mnist-t10k-split" (see :func:`load_dataset`).

Where files are looked for, in order:
    1. the data directory: the ``data_dir`` argument (the examples' ``--data-dir``), else the
       environment variable MINIGRAD_DATA_DIR, else the cache ``$XDG_CACHE_HOME/minigrad``
       (``~/.cache/minigrad`` when XDG_CACHE_HOME is unset). Inside it, both
       ``<dir>/<dataset>/<file>`` and ``<dir>/<file>`` are accepted (the second for a folder
       that holds one dataset), each as ``<file>.gz`` or uncompressed ``<file>``.
    2. read-only system copies: Debian's package dataset-fashion-mnist installs
       Fashion-MNIST in /usr/share/datasets/fashion-mnist.
    3. the mirrors, tried in turn; the download is saved as ``<dir>/<dataset>/<file>.gz``.
       The mirror list is ``MIRRORS[name]`` unless the ``mirrors`` argument or the
       environment variable MINIGRAD_MIRRORS (base URLs separated by spaces or commas) says
       otherwise; "{name}" in a base URL is replaced by the dataset name.

Verification. Every file, local or downloaded, is checked on every load: its IDX header and
shape, its exact uncompressed size, and a checksum from the table below. A content SHA-256
(of the uncompressed bytes, so any gzip wrapper passes, e.g. Debian's recompressed files) is
used wherever it is known. Where it is not (MNIST's training images and KMNIST), the file is
checked against the MD5 of the .gz file the mirrors serve, so only that original .gz is
accepted for those. Each file lists its accepted checks; one match is enough. Checking costs
about a sixth of the time of decompressing (a 47 MB file: 0.04 s of SHA-256 against 0.26 s
of gunzip), so no verification result is cached.
"""

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minigrad.data import download as download_module
from minigrad.data.idx import REDOWNLOAD_HINT, DataError, decode_idx, read_stored
from minigrad.data.loader import permutation
from minigrad.random import Generator

__all__ = [
    "DATASETS", "MIRRORS", "NORMALIZATION", "SYSTEM_DIRS", "T10K_SPLIT", "Check",
    "DataFile", "DataNotFoundError", "find_file", "load_dataset", "resolve_data_dir",
    "split_dataset", "verify_file",
]


class DataNotFoundError(DataError):
    """A data file is neither on disk nor downloadable."""


class Check(NamedTuple):
    """One accepted checksum: ``hashlib.new(algorithm, data).hexdigest() == digest``.

    ``target`` says which bytes: "content" (the uncompressed IDX file) or "gz" (the .gz file
    exactly as the mirrors serve it).
    """

    target: str
    algorithm: str
    digest: str


class DataFile(NamedTuple):
    """What a good copy of one IDX file looks like."""

    size: int       # bytes of the uncompressed IDX file
    shape: tuple    # shape of the array it holds
    checks: tuple   # accepted Checks: one match is enough


def content_sha256(digest):
    return Check("content", "sha256", digest)


def gz_md5(digest):
    return Check("gz", "md5", digest)


TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"

DATASETS = {
    "mnist": {
        TRAIN_IMAGES: DataFile(47040016, (60000, 28, 28), (
            gz_md5("f68b3c2dcbeaaa9fbdd348bbdeb94873"),)),
        TRAIN_LABELS: DataFile(60008, (60000,), (content_sha256(
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),)),
        TEST_IMAGES: DataFile(7840016, (10000, 28, 28), (content_sha256(
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),)),
        TEST_LABELS: DataFile(10008, (10000,), (content_sha256(
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),)),
    },
    "fashion-mnist": {
        TRAIN_IMAGES: DataFile(47040016, (60000, 28, 28), (content_sha256(
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),)),
        TRAIN_LABELS: DataFile(60008, (60000,), (content_sha256(
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),)),
        TEST_IMAGES: DataFile(7840016, (10000, 28, 28), (content_sha256(
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),)),
        TEST_LABELS: DataFile(10008, (10000,), (content_sha256(
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),)),
    },
    "kmnist": {
        TRAIN_IMAGES: DataFile(47040016, (60000, 28, 28), (
            gz_md5("bdb82020997e1d708af4cf47b453dcf7"),)),
        TRAIN_LABELS: DataFile(60008, (60000,), (
            gz_md5("e144d726b3acfaa3e44228e80efcd344"),)),
        TEST_IMAGES: DataFile(7840016, (10000, 28, 28), (
            gz_md5("5c965bf0a639b31b8f53240b1b52f4d7"),)),
        TEST_LABELS: DataFile(10008, (10000,), (
            gz_md5("7320c461ea6c1c855c0b718fb2a4b134"),)),
    },
}

MIRRORS = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    "kmnist": ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
}

SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}

# (mean, std) of the training pixels scaled to [0, 1], for DataLoader(normalize=...)
NORMALIZATION = {
    "mnist": (0.1307, 0.3081),
    "fashion-mnist": (0.2860, 0.3530),
    "kmnist": (0.1918, 0.3483),
    "mnist-t10k-split": (0.1307, 0.3081),
}

# MNIST's 10,000 test digits split into 8,000 for training and 2,000 for testing, for when
# the 60,000 training images cannot be had (offline); the split is fixed by its seed.
T10K_SPLIT = {"dataset": "mnist", "n_train": 8000, "seed": 0}


def resolve_data_dir(data_dir=None):
    """The data directory: ``data_dir`` > $MINIGRAD_DATA_DIR > $XDG_CACHE_HOME/minigrad."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("MINIGRAD_DATA_DIR"):
        return Path(os.environ["MINIGRAD_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "minigrad"


def _candidates(name, filename, root):
    dirs = [root / name, root] + [Path(d) for d in SYSTEM_DIRS.get(name, ())]
    return [d / f for d in dirs for f in (filename + ".gz", filename)]


def find_file(name, filename, data_dir=None):
    """The first existing local copy of ``filename`` of dataset ``name``, or None."""
    for path in _candidates(name, filename, resolve_data_dir(data_dir)):
        if path.is_file():
            return path
    return None


def _check_digests(path, stored, content, spec):
    """Raise DataError unless one of ``spec.checks`` matches the file's bytes."""
    found = []
    for check in spec.checks:
        if check.target == "gz" and stored is content:
            found.append(f"{check.algorithm} of the .gz file: not applicable, file is not gzip")
            continue
        data = content if check.target == "content" else stored
        digest = hashlib.new(check.algorithm, data).hexdigest()
        if digest == check.digest:
            return
        what = "uncompressed content" if check.target == "content" else ".gz file"
        found.append(f"{check.algorithm} of the {what}: expected {check.digest}, found {digest}")
    hint = REDOWNLOAD_HINT
    if all(check.target == "gz" for check in spec.checks):
        hint = ("only the original .gz file from the mirrors can be verified for this file (no "
                "checksum of its uncompressed content is known); " + REDOWNLOAD_HINT)
    raise DataError(f"{path}: checksum mismatch ({'; '.join(found)}); {hint}")


def verify_file(path, spec):
    """Read and verify one file against its :class:`DataFile`; return its array."""
    stored, content = read_stored(path)
    array = decode_idx(content, str(path))
    if array.shape != tuple(spec.shape) or array.dtype != np.uint8:
        raise DataError(f"{path}: expected a uint8 array of shape {tuple(spec.shape)}, found "
                        f"{array.dtype} {array.shape}; {REDOWNLOAD_HINT}")
    if len(content) != spec.size:
        raise DataError(f"{path}: expected {spec.size} bytes uncompressed, found "
                        f"{len(content)}; {REDOWNLOAD_HINT}")
    _check_digests(path, stored, content, spec)
    return array


def _mirrors(name, mirrors):
    if mirrors is None and os.environ.get("MINIGRAD_MIRRORS"):
        mirrors = os.environ["MINIGRAD_MIRRORS"].replace(",", " ").split()
    if mirrors is None:
        mirrors = MIRRORS.get(name, ())
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    return [m.replace("{name}", name) for m in mirrors]


def _load_file(name, filename, root, download, mirrors):
    spec = DATASETS[name][filename]
    cause = None
    path = find_file(name, filename, root)
    if path is not None:
        return verify_file(path, spec)
    searched = "\n  ".join(str(p) for p in _candidates(name, filename, root))
    if download:
        target = root / name / (filename + ".gz")
        made_dir = not target.parent.exists()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            download_module.download(filename + ".gz", target, _mirrors(name, mirrors),
                                     lambda tmp: verify_file(tmp, spec))
            return verify_file(target, spec)
        except (download_module.DownloadError, OSError) as exc:
            failed, cause = f"the download failed: {exc}", exc
            if made_dir and not any(target.parent.iterdir()):
                target.parent.rmdir()   # leave no trace of a failed download
    else:
        failed = "downloads are off (download=False)"
    hint = ""
    if name == "mnist" and filename.startswith("train"):
        hint = ("\nWithout MNIST's training set, load_dataset('mnist-t10k-split') trains on "
                "8,000 of MNIST's 10,000 test digits and tests on the other 2,000.")
    raise DataNotFoundError(
        f"{name}: file {filename} is missing.\nSearched:\n  {searched}\nand {failed}\n"
        f"Put {filename}.gz (or the uncompressed {filename}) in {root / name}, or point "
        f"MINIGRAD_DATA_DIR (or the examples' --data-dir) at a directory that holds "
        f"{name}/{filename}.gz.{hint}") from cause


def split_dataset(images, labels, n_train, seed=0):
    """Split one labelled set in two at random: ``((x_train, y_train), (x_test, y_test))``.

    The order is a permutation drawn from ``minigrad.random.Generator(seed)``, so a seed
    always gives the same split, on every machine.
    """
    n = len(images)
    if len(labels) != n:
        raise ValueError(f"images and labels differ in length: {n} and {len(labels)}")
    if not 0 < n_train < n:
        raise ValueError(f"n_train must lie strictly between 0 and {n}, got {n_train}")
    order = permutation(n, Generator(seed).next_key())
    train, test = order[:n_train], order[n_train:]
    return (images[train], labels[train]), (images[test], labels[test])


def load_dataset(name, train=True, data_dir=None, download=True, mirrors=None):
    """Load a dataset split as ``(images, labels)``: uint8 (N, 28, 28) and int64 (N,).

    Args:
        name:     "mnist", "fashion-mnist", "kmnist", or "mnist-t10k-split": MNIST's 10,000
                  test digits split at random (seed 0) into 8,000 for training
                  (``train=True``) and 2,000 for testing, so that examples can train on real
                  digits where the 60,000 MNIST training images are unavailable (offline).
        train:    the training split (True) or the test split (False).
        data_dir: where to look and to download to (see the module docstring).
        download: fetch missing files from the mirrors.
        mirrors:  base URLs to use instead of ``MIRRORS[name]`` and $MINIGRAD_MIRRORS.

    Raises:
        DataNotFoundError: a file is missing and cannot be downloaded; the message says which,
            where it was looked for, why the download failed and where to put it.
        DataError: a file is corrupt or fails its checksum.
    """
    key = name.lower() if isinstance(name, str) else name
    if key == "mnist-t10k-split":
        images, labels = load_dataset(T10K_SPLIT["dataset"], False, data_dir, download, mirrors)
        parts = split_dataset(images, labels, T10K_SPLIT["n_train"], T10K_SPLIT["seed"])
        return parts[0] if train else parts[1]
    if key not in DATASETS:
        known = ", ".join(sorted(DATASETS) + ["mnist-t10k-split"])
        raise ValueError(f"unknown dataset {name!r}; expected one of {known}")
    root = resolve_data_dir(data_dir)
    image_file, label_file = (TRAIN_IMAGES, TRAIN_LABELS) if train else (TEST_IMAGES, TEST_LABELS)
    images = _load_file(key, image_file, root, download, mirrors)
    labels = _load_file(key, label_file, root, download, mirrors)
    if len(images) != len(labels):
        raise DataError(f"{key}: {len(images)} images but {len(labels)} labels")
    return images, labels.astype(np.int64)
