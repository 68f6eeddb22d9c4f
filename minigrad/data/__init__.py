"""Data: IDX files, the MNIST-family datasets (verified downloads) and a DataLoader.

    from minigrad.data import DataLoader, NORMALIZATION, load_dataset

    images, labels = load_dataset("fashion-mnist", train=True, data_dir=args.data_dir)
    loader = DataLoader(images, labels, batch_size=128, generator=gen, device="cuda",
                        normalize=NORMALIZATION["fashion-mnist"], flatten=True)
    for x, y in loader:   # x float32 (128, 784), y int64 (128,), on the GPU
        ...
"""

from minigrad.data.datasets import (
    DATASETS, MIRRORS, NORMALIZATION, T10K_SPLIT, DataNotFoundError, load_dataset,
    resolve_data_dir, split_dataset,
)
from minigrad.data.download import DownloadError
from minigrad.data.idx import DataError, read_idx, write_idx
from minigrad.data.loader import DataLoader, permutation

__all__ = [
    "DATASETS", "MIRRORS", "NORMALIZATION", "T10K_SPLIT", "DataError", "DataLoader",
    "DataNotFoundError", "DownloadError", "load_dataset", "permutation", "read_idx",
    "resolve_data_dir", "split_dataset", "write_idx",
]
