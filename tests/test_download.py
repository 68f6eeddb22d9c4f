"""The dataset table, the MNIST test-set split, and downloads from mirrors.

Downloads run against HTTP servers on 127.0.0.1 that serve files the tests made. Nothing
leaves the machine: the dataset table is replaced by tiny files with their own checksums,
and every mirror is a local server (or a closed local port).
"""

import gzip
import hashlib
import http.server
import socket
import threading

import numpy as np
import pytest

from minigrad.data import datasets as ds
from minigrad.data import download as dl
from minigrad.data import DataError, DataNotFoundError, DownloadError
from minigrad.data.idx import encode_idx
from test_data import table_for, tiny_arrays, write_files

FILE = ds.TRAIN_IMAGES + ".gz"


class Server:
    """An HTTP server on 127.0.0.1 with scripted answers, run in a thread.

    files:      URL path -> bytes served with status 200.
    failures:   URL path -> how many requests get HTTP 500 before the file is served.
    short:      URL paths whose response announces more bytes than it sends.
    requests:   the paths requested, in order.
    """

    def __init__(self):
        self.files, self.failures, self.short, self.requests = {}, {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.failures.get(self.path, 0) > 0:
                    server.failures[self.path] -= 1
                    self.send_error(500, "scripted failure")
                    return
                if self.path not in server.files:
                    self.send_error(404)
                    return
                body = server.files[self.path]
                self.send_response(200)
                announced = len(body) + (100 if self.path in server.short else 0)
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        # a short poll interval lets shutdown() return at once
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,),
                                       daemon=True)
        self.thread.start()

    def serve(self, path, data):
        self.files["/" + path] = data

    def count(self, path):
        return self.requests.count("/" + path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def second_server():
    s = Server()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def offline_setup(monkeypatch):
    """Tiny "mnist" table, no real mirrors, no proxies, no waiting between retries."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY", "MINIGRAD_MIRRORS", "MINIGRAD_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr(dl, "BACKOFF", 0.0)
    monkeypatch.setattr(dl, "VERBOSE", False)
    monkeypatch.setattr(ds, "SYSTEM_DIRS", {})
    monkeypatch.setitem(ds.MIRRORS, "mnist", ())


@pytest.fixture
def tiny(monkeypatch):
    arrays = tiny_arrays(n_train=50)
    monkeypatch.setitem(ds.DATASETS, "mnist", table_for(arrays))
    return arrays


def gz_of(arrays, name):
    return gzip.compress(encode_idx(arrays[name]), mtime=0)


def serve_all(server, arrays, prefix=""):
    for name, array in arrays.items():
        server.serve(prefix + name + ".gz", gz_of(arrays, name))


def files_in(directory):
    return sorted(p.name for p in directory.rglob("*") if p.is_file())


def test_real_table_sizes_agree_with_shapes_and_digests_are_hex():
    lengths = {"md5": 32, "sha256": 64}
    for name, files in ds.DATASETS.items():
        assert set(files) == {ds.TRAIN_IMAGES, ds.TRAIN_LABELS, ds.TEST_IMAGES,
                              ds.TEST_LABELS}, name
        for filename, spec in files.items():
            header = 4 + 4 * len(spec.shape)
            assert spec.size == header + int(np.prod(spec.shape)), (name, filename)
            assert spec.checks, (name, filename)
            for check in spec.checks:
                assert check.target in ("content", "gz")
                assert len(check.digest) == lengths[check.algorithm]
                int(check.digest, 16)
    assert set(ds.NORMALIZATION) == set(ds.DATASETS) | {"mnist-t10k-split"}


def test_unknown_dataset_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; expected one of "
                                         "fashion-mnist, kmnist, mnist, mnist-t10k-split"):
        ds.load_dataset("cifar", download=False)


def test_mnist_t10k_split_divides_the_test_set(tmp_path, tiny, monkeypatch):
    monkeypatch.setitem(ds.T10K_SPLIT, "n_train", 3)
    write_files(tmp_path / "mnist", tiny)
    x_tr, y_tr = ds.load_dataset("mnist-t10k-split", train=True, data_dir=tmp_path)
    x_te, y_te = ds.load_dataset("mnist-t10k-split", train=False, data_dir=tmp_path)
    assert len(x_tr) == 3 and len(x_te) == 1 and y_tr.dtype == np.int64
    rows = {bytes(r) for r in np.concatenate([x_tr, x_te]).reshape(4, -1)}
    assert rows == {bytes(r) for r in tiny[ds.TEST_IMAGES].reshape(4, -1)}
    again, _ = ds.load_dataset("mnist-t10k-split", train=True, data_dir=tmp_path)
    np.testing.assert_array_equal(again, x_tr)


def test_split_dataset_is_disjoint_complete_and_seeded():
    x, y = np.arange(100) * 10, np.arange(100)
    (x_tr, y_tr), (x_te, y_te) = ds.split_dataset(x, y, 80, seed=3)
    assert len(y_tr) == 80 and len(y_te) == 20
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), y)
    np.testing.assert_array_equal(x_tr, y_tr * 10)   # images stay paired with labels
    (_, y_same), _ = ds.split_dataset(x, y, 80, seed=3)
    (_, y_other), _ = ds.split_dataset(x, y, 80, seed=4)
    np.testing.assert_array_equal(y_same, y_tr)
    assert not np.array_equal(y_other, y_tr)
    with pytest.raises(ValueError, match="n_train must lie strictly between 0 and 100"):
        ds.split_dataset(x, y, 100)


def test_good_file_is_downloaded_verified_and_kept(tmp_path, tiny, server):
    serve_all(server, tiny)
    images, labels = ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])
    np.testing.assert_array_equal(labels, tiny[ds.TRAIN_LABELS])
    assert files_in(tmp_path) == sorted([FILE, ds.TRAIN_LABELS + ".gz"])
    assert (tmp_path / "mnist" / FILE).read_bytes() == gz_of(tiny, ds.TRAIN_IMAGES)
    ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    assert server.count(FILE) == 1   # the second load reads the local copy


def test_download_can_be_verified_by_the_gz_checksum(tmp_path, tiny, server, monkeypatch):
    serve_all(server, tiny)
    digest = hashlib.md5(gz_of(tiny, ds.TRAIN_IMAGES)).hexdigest()
    spec = ds.DATASETS["mnist"][ds.TRAIN_IMAGES]._replace(checks=(ds.gz_md5(digest),))
    monkeypatch.setitem(ds.DATASETS["mnist"], ds.TRAIN_IMAGES, spec)
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])


def test_bad_checksum_is_rejected_and_leaves_no_file(tmp_path, tiny, server):
    serve_all(server, dict(tiny, **{ds.TRAIN_IMAGES: tiny[ds.TRAIN_IMAGES] ^ 1}))
    with pytest.raises(DataNotFoundError, match="checksum mismatch") as info:
        ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    assert server.url + FILE in str(info.value)
    assert server.count(FILE) == 1   # a bad copy is not fetched again from the same mirror
    assert files_in(tmp_path) == []


def test_truncated_file_is_rejected_and_leaves_no_file(tmp_path, tiny, server):
    serve_all(server, tiny)
    server.serve(FILE, gz_of(tiny, ds.TRAIN_IMAGES)[:-30])
    with pytest.raises(DataNotFoundError, match="does not decompress"):
        ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    assert files_in(tmp_path) == []


def test_body_shorter_than_announced_is_retried_then_rejected(tmp_path, tiny, server):
    serve_all(server, tiny)
    server.short.add("/" + FILE)
    with pytest.raises(DataNotFoundError, match=r"after 3 tries"):
        ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    assert server.count(FILE) == dl.ATTEMPTS == 3
    assert files_in(tmp_path) == []


def test_server_error_once_then_success_through_retry(tmp_path, tiny, server):
    serve_all(server, tiny)
    server.failures["/" + FILE] = 1
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[server.url])
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])
    assert server.count(FILE) == 2


def test_first_mirror_refusing_connections_falls_back_to_the_second(tmp_path, tiny, server):
    serve_all(server, tiny)
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path,
                                mirrors=[closed_port_url(), server.url])
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])


def test_not_found_moves_to_the_next_mirror_without_retrying(
        tmp_path, tiny, server, second_server):
    serve_all(second_server, tiny)
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path,
                                mirrors=[server.url, second_server.url])
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])
    assert server.count(FILE) == 1 and second_server.count(FILE) == 1


def test_all_mirrors_failing_explains_what_is_missing_and_where_to_put_it(
        tmp_path, tiny, server):
    dead = closed_port_url()
    server.failures["/" + FILE] = 10
    with pytest.raises(DataNotFoundError) as info:
        ds.load_dataset("mnist", data_dir=tmp_path, mirrors=[dead, server.url])
    message = str(info.value)
    assert f"mnist: file {ds.TRAIN_IMAGES} is missing" in message
    assert str(tmp_path / "mnist" / FILE) in message   # searched there
    assert f"{dead}{FILE}: URLError" in message
    assert f"{server.url}{FILE}: HTTP 500" in message
    where = f"Put {FILE} (or the uncompressed {ds.TRAIN_IMAGES}) in {tmp_path / 'mnist'}"
    assert where in message
    assert "MINIGRAD_DATA_DIR" in message and "--data-dir" in message
    assert isinstance(info.value.__cause__, DownloadError)
    assert len(info.value.__cause__.failures) == 2
    assert files_in(tmp_path) == [] and not (tmp_path / "mnist").exists()


def test_retries_back_off_exponentially(tmp_path, tiny, server, monkeypatch):
    waits = []
    monkeypatch.setattr(dl.time, "sleep", waits.append)
    server.failures["/" + FILE] = 10
    with pytest.raises(DownloadError):
        dl.download(FILE, tmp_path / FILE, [server.url], lambda path: None, attempts=4,
                    backoff=0.25)
    assert waits == [0.25, 0.5, 1.0]
    assert server.count(FILE) == 4


def test_mirrors_from_environment_with_name_placeholder(tmp_path, tiny, server, monkeypatch):
    serve_all(server, tiny, prefix="data/mnist/")
    monkeypatch.setenv("MINIGRAD_MIRRORS", f"{closed_port_url()}, {server.url}data/{{name}}/")
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])


def test_mirrors_from_the_module_table(tmp_path, tiny, server, monkeypatch):
    serve_all(server, tiny)
    monkeypatch.setitem(ds.MIRRORS, "mnist", (server.url,))
    images, _ = ds.load_dataset("mnist", data_dir=tmp_path)
    np.testing.assert_array_equal(images, tiny[ds.TRAIN_IMAGES])


def test_download_replaces_atomically_and_cleans_up_after_rejection(tmp_path, server):
    server.serve("f.bin", b"new contents")
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"old")

    def reject(path):
        assert open(path, "rb").read() == b"new contents"   # verified before the rename
        raise DataError("rejected by the test")

    with pytest.raises(DownloadError, match="rejected by the test"):
        dl.download("f.bin", dest, [server.url], reject)
    assert dest.read_bytes() == b"old" and files_in(tmp_path) == ["f.bin"]
    assert dl.download("f.bin", dest, [server.url], lambda path: None) == server.url + "f.bin"
    assert dest.read_bytes() == b"new contents" and files_in(tmp_path) == ["f.bin"]


def test_download_rejects_zero_attempts(tmp_path):
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        dl.download(FILE, tmp_path / FILE, ["http://127.0.0.1:1/"], lambda p: None,
                    attempts=0)
