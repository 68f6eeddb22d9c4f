"""IDX reader/writer, finding and verifying dataset files on disk, DataLoader.

No test here touches the network: the dataset table is replaced by tiny files the tests
write, with their own checksums, and the mirror lists are emptied.
"""

import gzip
import hashlib

import numpy as np
import pytest
import scipy.stats

import minigrad
from minigrad.data import datasets as ds
from minigrad.data import DataError, DataLoader, DataNotFoundError, permutation
from minigrad.data.idx import decode_idx, encode_idx, read_idx, write_idx
from minigrad.random import Generator


def tiny_arrays(n_train=6, n_test=4, seed=0):
    """Four small uint8 arrays named like the MNIST files."""
    rng = np.random.default_rng(seed)
    return {
        ds.TRAIN_IMAGES: rng.integers(0, 256, (n_train, 4, 4), dtype=np.uint8),
        ds.TRAIN_LABELS: rng.integers(0, 10, n_train, dtype=np.uint8),
        ds.TEST_IMAGES: rng.integers(0, 256, (n_test, 4, 4), dtype=np.uint8),
        ds.TEST_LABELS: rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def table_for(arrays):
    """A DATASETS entry for ``arrays``, checked by their own content SHA-256."""
    table = {}
    for name, array in arrays.items():
        content = encode_idx(array)
        digest = hashlib.sha256(content).hexdigest()
        table[name] = ds.DataFile(len(content), array.shape, (ds.content_sha256(digest),))
    return table


def write_files(directory, arrays, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx(directory / (name + ".gz" if gz else name), array, gzip=gz)


@pytest.fixture
def tiny(monkeypatch):
    """Make "mnist" a tiny dataset with no mirrors and no system copies; return its arrays."""
    arrays = tiny_arrays()
    monkeypatch.setitem(ds.DATASETS, "mnist", table_for(arrays))
    monkeypatch.setitem(ds.MIRRORS, "mnist", ())
    monkeypatch.setattr(ds, "SYSTEM_DIRS", {})
    monkeypatch.delenv("MINIGRAD_MIRRORS", raising=False)
    monkeypatch.delenv("MINIGRAD_DATA_DIR", raising=False)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
def test_idx_round_trip_keeps_values_shape_and_dtype(tmp_path, gz, dtype):
    array = (np.arange(24) * 7 - 50).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array, gzip=gz)
    back = read_idx(tmp_path / "a")
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)
    back[0, 0, 0] = 1   # a writable array, not a view of read-only bytes


def test_gzip_is_detected_by_magic_bytes_not_by_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "plain.gz", array, gzip=False)
    write_idx(tmp_path / "packed.idx", array, gzip=True)
    assert (tmp_path / "packed.idx").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "plain.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.idx"), array)


def test_idx_header_is_the_documented_layout():
    content = encode_idx(np.zeros((2, 3), np.uint8))
    assert content[:12] == bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3])
    assert encode_idx(np.zeros(1, ">i4"))[2] == 0x0C


def _bad_idx(tmp_path, content):
    path = tmp_path / "bad-idx1-ubyte"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("mutate,match", [
    (lambda c: b"\x01" + c[1:], r"IDX magic number: expected 00 00 <type code> <ndim>, "
                                r"found 01 00 08 01"),
    (lambda c: c[:2] + b"\x07" + c[3:], r"IDX type code: expected one of 0x08.*found 0x07"),
    (lambda c: c[:-1], r"expected 13 bytes, found 12 bytes \(truncated\)"),
    (lambda c: c + b"\x00", r"expected 13 bytes, found 14 bytes \(extra bytes at the end\)"),
    (lambda c: c[:6], r"IDX header: expected 8 bytes for 1 dimensions, found 6 bytes"),
    (lambda c: c[:2], r"IDX header: expected at least 4 bytes"),
])
def test_corrupt_idx_raises_data_error_naming_file_and_fix(tmp_path, mutate, match):
    content = encode_idx(np.arange(5, dtype=np.uint8))
    path = _bad_idx(tmp_path, mutate(content))
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)
    assert "delete the file so that it is downloaded again" in str(info.value)


def test_truncated_gzip_raises_data_error(tmp_path):
    packed = gzip.compress(encode_idx(np.arange(1000, dtype=np.uint8)))
    path = _bad_idx(tmp_path, packed[:-20])
    with pytest.raises(DataError, match="starts like a gzip file but does not decompress"):
        read_idx(path)


def test_encode_rejects_dtypes_idx_cannot_hold():
    with pytest.raises(TypeError, match="IDX cannot store dtype bool"):
        encode_idx(np.zeros(3, bool))
    with pytest.raises(TypeError, match="IDX cannot store dtype uint16"):
        encode_idx(np.zeros(3, np.uint16))


def test_decode_big_endian_values():
    content = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(decode_idx(content), [258, -2])


@pytest.mark.parametrize("layout", ["dataset-folder-gz", "top-level-raw"])
def test_dataset_is_found_in_either_layout(tmp_path, tiny, layout):
    folder = tmp_path / "mnist" if layout == "dataset-folder-gz" else tmp_path
    write_files(folder, tiny, gz=layout == "dataset-folder-gz")
    images, labels = ds.load_dataset("mnist", train=True, data_dir=tmp_path, download=False)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])
    np.testing.assert_array_equal(labels, tiny[ds.TRAIN_LABELS])
    images, labels = ds.load_dataset("MNIST", train=False, data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(images, tiny[ds.TEST_IMAGES])


def test_any_gzip_wrapper_passes_a_content_checksum(tmp_path, tiny):
    write_files(tmp_path / "mnist", tiny, gz=False)
    path = tmp_path / "mnist" / ds.TRAIN_IMAGES
    # recompress at another level and with a timestamp: other .gz bytes, same content
    (tmp_path / "mnist" / (ds.TRAIN_IMAGES + ".gz")).write_bytes(
        gzip.compress(path.read_bytes(), compresslevel=1, mtime=12345))
    path.unlink()
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path, download=False)
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])


def test_environment_data_dir_is_used_when_no_argument(tmp_path, tiny, monkeypatch):
    write_files(tmp_path / "mnist", tiny)
    monkeypatch.setenv("MINIGRAD_DATA_DIR", str(tmp_path))
    images, _ = ds.load_dataset("mnist", train=False, download=False)
    np.testing.assert_array_equal(images, tiny[ds.TEST_IMAGES])


def test_data_dir_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MINIGRAD_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert ds.resolve_data_dir() == tmp_path / "home" / ".cache" / "minigrad"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.resolve_data_dir() == tmp_path / "xdg" / "minigrad"
    monkeypatch.setenv("MINIGRAD_DATA_DIR", str(tmp_path / "env"))
    assert ds.resolve_data_dir() == tmp_path / "env"
    assert ds.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"


def test_system_directory_is_a_read_only_fallback(tmp_path, tiny, monkeypatch):
    system = tmp_path / "system"
    write_files(system, tiny)
    monkeypatch.setattr(ds, "SYSTEM_DIRS", {"mnist": (str(system),)})
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path / "empty", download=False)
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])
    assert not (tmp_path / "empty").exists()


def test_checksum_mismatch_on_local_file_is_a_clear_error(tmp_path, tiny):
    other = dict(tiny, **{ds.TRAIN_IMAGES: tiny[ds.TRAIN_IMAGES] ^ 1})
    write_files(tmp_path / "mnist", other)
    expected = ds.DATASETS["mnist"][ds.TRAIN_IMAGES].checks[0].digest
    with pytest.raises(DataError, match="checksum mismatch") as info:
        ds.load_dataset("mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "mnist" / (ds.TRAIN_IMAGES + ".gz")) in message
    assert f"sha256 of the uncompressed content: expected {expected}" in message
    assert "delete the file" in message


def test_local_file_of_wrong_shape_is_rejected(tmp_path, tiny):
    write_files(tmp_path / "mnist", dict(tiny, **{ds.TRAIN_LABELS: np.zeros(7, np.uint8)}))
    with pytest.raises(DataError, match=r"expected a uint8 array of shape \(6,\), found"):
        ds.load_dataset("mnist", data_dir=tmp_path, download=False)


def _gz_only_spec(path):
    gz_digest = hashlib.md5(path.read_bytes()).hexdigest()
    spec = ds.DATASETS["mnist"][ds.TRAIN_IMAGES]
    return spec._replace(checks=(ds.gz_md5(gz_digest),))


def test_gz_checksum_accepts_the_original_gz_and_rejects_other_copies(tmp_path, tiny):
    folder = tmp_path / "mnist"
    write_files(folder, tiny)
    gz_path = folder / (ds.TRAIN_IMAGES + ".gz")
    spec = _gz_only_spec(gz_path)
    np.testing.assert_array_equal(ds.verify_file(gz_path, spec), tiny[ds.TRAIN_IMAGES])
    raw_path = folder / ds.TRAIN_IMAGES
    write_idx(raw_path, tiny[ds.TRAIN_IMAGES])
    with pytest.raises(DataError, match="only the original .gz file from the mirrors"):
        ds.verify_file(raw_path, spec)
    gz_path.write_bytes(gzip.compress(raw_path.read_bytes(), compresslevel=1))
    with pytest.raises(DataError, match="md5 of the .gz file: expected"):
        ds.verify_file(gz_path, spec)


def test_one_matching_check_of_the_list_is_enough(tmp_path, tiny):
    write_files(tmp_path, tiny)
    spec = ds.DATASETS["mnist"][ds.TRAIN_IMAGES]
    spec = spec._replace(checks=(ds.gz_md5("0" * 32), ds.content_sha256("1" * 64))
                         + spec.checks)
    ds.verify_file(tmp_path / (ds.TRAIN_IMAGES + ".gz"), spec)
    with pytest.raises(DataError, match="checksum mismatch"):
        ds.verify_file(tmp_path / (ds.TRAIN_IMAGES + ".gz"), spec._replace(checks=spec.checks[:2]))


def test_missing_file_offline_names_file_directories_and_fix(tmp_path, tiny):
    write_files(tmp_path / "mnist", {ds.TRAIN_LABELS: tiny[ds.TRAIN_LABELS]})
    with pytest.raises(DataNotFoundError) as info:
        ds.load_dataset("mnist", data_dir=tmp_path, download=False)
    message = str(info.value)
    assert f"mnist: file {ds.TRAIN_IMAGES} is missing" in message
    assert str(tmp_path / "mnist" / (ds.TRAIN_IMAGES + ".gz")) in message
    assert str(tmp_path / ds.TRAIN_IMAGES) in message
    assert "downloads are off" in message
    assert f"Put {ds.TRAIN_IMAGES}.gz" in message and "MINIGRAD_DATA_DIR" in message
    assert "mnist-t10k-split" in message


def _labels_of(loader):
    return np.concatenate([y.numpy() for _, y in loader])


def _loader(n=10, **kwargs):
    images = np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2)
    kwargs.setdefault("generator", Generator(0))
    return DataLoader(images, np.arange(n), **kwargs)


def test_every_sample_appears_once_per_epoch():
    loader = _loader(n=23, batch_size=5)
    for _ in range(3):
        labels = _labels_of(loader)
        np.testing.assert_array_equal(np.sort(labels), np.arange(23))


def test_batches_pair_images_with_their_labels():
    loader = _loader(n=12, batch_size=5, flatten=True)
    for x, y in loader:
        np.testing.assert_allclose(x.numpy()[:, 0] * 255, y.numpy() * 4, atol=1e-4)


def test_len_and_drop_last():
    assert len(_loader(n=23, batch_size=5)) == 5
    loader = _loader(n=23, batch_size=5, drop_last=True)
    assert len(loader) == 4
    sizes = [len(y) for _, y in loader]
    assert sizes == [5, 5, 5, 5]
    assert [len(y) for _, y in _loader(n=23, batch_size=5)][-1] == 3


def test_same_seed_same_order_and_new_order_each_epoch():
    a, b = _loader(n=50), _loader(n=50)
    first_a, first_b = _labels_of(a), _labels_of(b)
    np.testing.assert_array_equal(first_a, first_b)
    assert not np.array_equal(_labels_of(a), first_a)
    other = _labels_of(_loader(n=50, generator=Generator(1)))
    assert not np.array_equal(other, first_a)


def test_shuffle_false_keeps_the_given_order_and_draws_nothing():
    gen = Generator(5)
    loader = _loader(n=7, batch_size=3, shuffle=False, generator=gen)
    np.testing.assert_array_equal(_labels_of(loader), np.arange(7))
    assert gen.counter == 0
    _loader(n=7, generator=gen)
    assert gen.counter == 1   # one draw when shuffling, at construction only


def test_normalization_values():
    images = np.array([[0, 51], [255, 102]], np.uint8).reshape(2, 1, 2)
    loader = DataLoader(images, np.array([0, 1]), batch_size=2, shuffle=False,
                        normalize=(0.5, 0.25))
    x, _ = next(iter(loader))
    expected = (np.array([[0, 51], [255, 102]]) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x.numpy().reshape(2, 2), expected, rtol=1e-6)
    plain, _ = next(iter(DataLoader(images, np.array([0, 1]), shuffle=False)))
    np.testing.assert_allclose(plain.numpy().reshape(2, 2), expected * 0.25 + 0.5, rtol=1e-6)


def test_float_images_are_not_rescaled_and_not_modified():
    images = np.array([[1.5, -2.0], [3.0, 4.0]])
    loader = DataLoader(images, np.array([0, 1]), shuffle=False, normalize=(1.0, 2.0))
    x, _ = next(iter(loader))
    np.testing.assert_allclose(x.numpy(), (images - 1.0) / 2.0)
    np.testing.assert_array_equal(images, [[1.5, -2.0], [3.0, 4.0]])


def test_batches_are_float32_and_int64_on_the_device(backend):
    loader = _loader(n=9, batch_size=4, device=backend.device, flatten=True)
    for x, y in loader:
        assert isinstance(x, minigrad.Tensor) and isinstance(y, minigrad.Tensor)
        assert x.device == backend.device and y.device == backend.device
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == (4,) and not x.requires_grad
    x, _ = next(iter(_loader(dtype=np.float64, device=backend.device)))
    assert x.dtype == np.float64


def test_resume_mid_epoch_reproduces_the_remaining_batches():
    loader = _loader(n=40, batch_size=6)
    _labels_of(loader)   # epoch 0
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["position"] == 3
    rest = [(x.numpy(), y.numpy()) for x, y in it] + [
        (x.numpy(), y.numpy()) for x, y in loader]      # the rest of epoch 1, then epoch 2
    resumed = _loader(n=40, batch_size=6, generator=Generator(99))
    resumed.load_state_dict(state)
    again = [(x.numpy(), y.numpy()) for x, y in resumed] + [
        (x.numpy(), y.numpy()) for x, y in resumed]
    assert len(again) == len(rest) == 4 + 7
    for (xa, ya), (xb, yb) in zip(rest, again):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_state_after_the_last_batch_points_at_the_next_epoch():
    loader = _loader(n=10, batch_size=5)
    batches = iter(loader)
    next(batches)
    next(batches)
    assert loader.state_dict()["epoch"] == 1 and loader.state_dict()["position"] == 0


def test_load_state_dict_rejects_a_different_setup():
    state = _loader(n=10, batch_size=5).state_dict()
    with pytest.raises(ValueError, match="saved with batch_size=5, this loader has 4"):
        _loader(n=10, batch_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match="disagree on shuffle"):
        _loader(n=10, batch_size=5, shuffle=False).load_state_dict(state)


def test_loader_leaves_numpy_global_rng_alone():
    before = np.random.get_state()[1].copy()
    _labels_of(_loader(n=30))
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
    ({"batch_size": 2.5}, ValueError, "batch_size must be a positive integer, got 2.5"),
    ({"batch_size": 20, "drop_last": True}, ValueError, "10 samples make no batch of 20"),
    ({"dtype": np.int32}, TypeError, "dtype must be a floating-point type"),
    ({"normalize": (0.5, 0.0)}, ValueError, r"needs std > 0"),
    ({"device": "tpu"}, ValueError, "unknown device 'tpu'"),
])
def test_bad_loader_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        _loader(**kwargs)


def test_loader_rejects_mismatched_or_non_numpy_inputs():
    with pytest.raises(ValueError, match=r"got shapes \(3, 2\) and \(2,\)"):
        DataLoader(np.zeros((3, 2), np.uint8), np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="takes NumPy arrays"):
        DataLoader([[0, 1]], np.zeros(1, np.int64))
    with pytest.raises(TypeError, match="labels must be integers"):
        DataLoader(np.zeros((2, 2), np.uint8), np.zeros(2))


def test_permutation_is_a_permutation_and_uniform():
    np.testing.assert_array_equal(np.sort(permutation(1000, Generator(0))), np.arange(1000))
    gen = Generator(7)
    first = [int(permutation(5, gen)[0]) for _ in range(2000)]
    # each of 5 elements comes first with probability 1/5; fail only below p = 1e-4
    counts = np.bincount(first, minlength=5)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4
