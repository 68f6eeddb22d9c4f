"""Checkpoints: nested training state in one .npz file, written atomically, read without pickle.

A checkpoint holds named parts, each a nested structure of dicts (string keys), lists,
NumPy arrays and scalars, Python ints, floats, strings, bools and None::

    save_checkpoint("run/last.npz", model=model.state_dict(), optimizer=opt.state_dict(),
                    schedule=schedule.state_dict(), rng=generator.get_state(), epoch=epoch)
    parts = load_checkpoint("run/last.npz")
    model.load_state_dict(parts["model"])

Format: an ordinary uncompressed .npz (a zip of .npy files). Arrays are stored as entries
``a0``, ``a1``, ...; the structure is a JSON manifest stored as UTF-8 bytes in the entry
``manifest``. Every dict, list and array in the manifest is a tagged object
(``{"dict": {...}}``, ``{"list": [...]}``, ``{"array": "a0"}``, ``{"scalar": "a1"}`` for a
NumPy scalar), and every other value is a plain JSON number, string, bool or null, so the
structure reads back unambiguously whatever keys the user chose. Python ints of any size
(64-bit RNG seeds reach 2**64 - 1) live in the JSON, not in int64 arrays, and come back
exact. Tuples come back as lists. Arrays on a device (CuPy) are copied to the host first.

Loading uses ``np.load(allow_pickle=False)``: a checkpoint cannot run code, and object arrays
are refused when saving.

Atomic write: the file is written under a temporary name in the destination directory,
flushed and fsync'ed, then renamed onto the final name with ``os.replace`` (atomic on POSIX
and Windows). A crash or an error mid-write leaves the previous checkpoint intact, and the
temporary file is removed.
"""

import json
import os
import secrets
import zipfile

import numpy as np

from minigrad.backend import as_numpy, device_of

FORMAT = "minigrad-checkpoint"
VERSION = 1
_MANIFEST = "manifest"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: corrupt, truncated or not a checkpoint."""


def save_checkpoint(path, /, **parts):
    """Write ``parts`` (keyword arguments) to ``path`` atomically; returns ``path``.

    Raises TypeError, naming where in the structure, for a value that cannot be stored (an
    object, a dict with a non-string key, an object array).
    """
    if not parts:
        raise ValueError("save_checkpoint: nothing to save; pass parts as keyword arguments, "
                         "e.g. save_checkpoint(path, model=model.state_dict())")
    arrays = {}
    manifest = {"format": FORMAT, "version": VERSION, "parts": _encode(parts, arrays, "parts")}
    text = json.dumps(manifest, separators=(",", ":"))
    arrays[_MANIFEST] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory,
                        f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    f = open(temp, "xb")   # "x": never reuse an existing file
    try:
        with f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())   # the bytes are on disk before the name points at them
        os.replace(temp, path)
    except BaseException:   # also KeyboardInterrupt: never leave the temporary file behind
        os.remove(temp)
        raise
    _fsync_directory(directory)
    return path


def load_checkpoint(path):
    """Read a checkpoint written by ``save_checkpoint``: a dict of its parts.

    Raises CheckpointError naming the file when it is corrupt, truncated or not a minigrad
    checkpoint (FileNotFoundError when it does not exist).
    """
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"checkpoint file '{path}' is corrupt or truncated and cannot be read "
            f"({type(exc).__name__}: {exc}); use an earlier checkpoint") from exc
    try:
        manifest = json.loads(arrays.pop(_MANIFEST).tobytes().decode("utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}")
        if manifest.get("version") != VERSION:
            raise ValueError(f"version {manifest.get('version')!r}, this code reads {VERSION}")
        return _decode(manifest["parts"], arrays)
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"'{path}' is not a readable minigrad checkpoint ({type(exc).__name__}: {exc}); "
            "was it written by save_checkpoint?") from exc


def _encode(value, arrays, where):
    """The JSON manifest node of ``value``; arrays go into ``arrays`` under fresh names."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        node = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"save_checkpoint: {where} has the key {key!r} of type "
                                f"{type(key).__name__}; dict keys must be strings")
            node[key] = _encode(item, arrays, f"{where}[{key!r}]")
        return {"dict": node}
    if isinstance(value, (list, tuple)):
        return {"list": [_encode(item, arrays, f"{where}[{i}]") for i, item in enumerate(value)]}
    if isinstance(value, np.generic):
        tag, array = "scalar", np.asarray(value)
    else:
        try:
            device_of(value)
        except TypeError:
            raise TypeError(f"save_checkpoint: {where} is a {type(value).__name__}, which a "
                            "checkpoint cannot hold; use dicts, lists, arrays, numbers and "
                            "strings (e.g. model.state_dict())") from None
        tag, array = "array", as_numpy(value)
    if array.dtype.hasobject:
        raise TypeError(f"save_checkpoint: {where} is an object array, which needs pickle; "
                        "convert it to a numeric or string dtype")
    name = f"a{len(arrays)}"
    arrays[name] = array
    return {tag: name}


def _decode(node, arrays):
    """Rebuild the value of a manifest node."""
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise ValueError(f"manifest node with {len(node)} tags")
    tag, content = next(iter(node.items()))
    if tag == "dict":
        return {key: _decode(item, arrays) for key, item in content.items()}
    if tag == "list":
        return [_decode(item, arrays) for item in content]
    if tag == "array":
        return arrays[content]
    if tag == "scalar":
        return arrays[content][()]
    raise ValueError(f"unknown manifest tag {tag!r}")


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # some file systems refuse fsync on a directory; the file is in place
        pass
    finally:
        os.close(fd)
