"""Read and write IDX files, the array format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a 4-byte magic number, the dimensions, then the values in C order, all
big-endian:

    magic    00 00 <type code> <ndim>      e.g. 00 00 08 03 for a 3-d array of ubyte
    dims     ndim unsigned 32-bit integers
    data     prod(dims) values of the type: 0x08 ubyte, 0x09 byte, 0x0B short (2 bytes),
             0x0C int (4 bytes), 0x0D float (4 bytes), 0x0E double (8 bytes)

Files may be gzip-compressed; compression is recognised by the gzip magic bytes (1f 8b), not
by the file name. Every structural check (magic, type code, dimensions, exact byte count)
raises :class:`DataError` naming the file, what was expected and what was found.
"""

import gzip as gzip_lib
import math
import struct
import zlib

import numpy as np

__all__ = ["DataError", "IDX_TYPES", "decode_idx", "encode_idx", "read_idx", "read_stored",
           "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"
IDX_TYPES = {
    0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_CODE_OF = {dtype.newbyteorder("="): code for code, dtype in IDX_TYPES.items()}
REDOWNLOAD_HINT = "delete the file so that it is downloaded again, or replace it with a good copy"


class DataError(ValueError):
    """A data file is corrupt, truncated, or does not match its expected checksum."""


def _bad_file(name, what, expected, found):
    return DataError(f"{name}: bad {what}: expected {expected}, found {found}; "
                     f"{REDOWNLOAD_HINT}")


def read_stored(path):
    """Return ``(stored, content)``: the file's bytes and its uncompressed bytes.

    ``content`` is ``stored`` itself when the file is not gzip-compressed.
    """
    with open(path, "rb") as f:
        stored = f.read()
    if stored[:2] != GZIP_MAGIC:
        return stored, stored
    try:
        return stored, gzip_lib.decompress(stored)
    except (OSError, EOFError, zlib.error) as exc:
        # a truncated download ends the gzip stream early: EOFError
        raise DataError(f"{path}: starts like a gzip file but does not decompress ({exc}); "
                        f"{REDOWNLOAD_HINT}") from exc


def decode_idx(content, name="<bytes>"):
    """Parse IDX ``content`` (uncompressed bytes) into a native-endian NumPy array.

    ``name`` is used in error messages (the file the bytes came from).
    """
    if len(content) < 4:
        raise _bad_file(name, "IDX header", "at least 4 bytes", f"{len(content)} bytes")
    magic = content[:4]
    if magic[:2] != b"\x00\x00":
        raise _bad_file(name, "IDX magic number", "00 00 <type code> <ndim>", magic.hex(" "))
    code, ndim = magic[2], magic[3]
    if code not in IDX_TYPES:
        codes = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise _bad_file(name, "IDX type code", f"one of {codes}", f"0x{code:02X}")
    start = 4 + 4 * ndim
    if len(content) < start:
        raise _bad_file(name, "IDX header", f"{start} bytes for {ndim} dimensions",
                        f"{len(content)} bytes (truncated)")
    shape = struct.unpack(f">{ndim}I", content[4:start])
    dtype = IDX_TYPES[code]
    expected = start + math.prod(shape) * dtype.itemsize
    if len(content) != expected:
        why = "truncated" if len(content) < expected else "extra bytes at the end"
        raise _bad_file(name, f"IDX size for shape {shape} of {dtype.name}",
                        f"{expected} bytes", f"{len(content)} bytes ({why})")
    array = np.frombuffer(content, dtype=dtype, offset=start).reshape(shape)
    return array.astype(dtype.newbyteorder("="))   # a writable copy in native byte order


def read_idx(path):
    """Read an IDX file, gzip-compressed or not, into a NumPy array.

    Raises:
        DataError: the file is not valid gzip, or not a well-formed IDX file.
    """
    _, content = read_stored(path)
    return decode_idx(content, str(path))


def encode_idx(array):
    """Return the IDX bytes (uncompressed) of a NumPy array."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        kinds = ", ".join(d.name for d in _CODE_OF)
        raise TypeError(f"IDX cannot store dtype {array.dtype}; convert the array to one of "
                        f"{kinds}")
    if array.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, got {array.ndim}")
    if any(d >= 2 ** 32 for d in array.shape):
        raise ValueError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    code = _CODE_OF[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_TYPES[code]).tobytes()


def write_idx(path, array, gzip=False):
    """Write ``array`` to ``path`` as an IDX file, gzip-compressed when ``gzip`` is True.

    The gzip header carries no timestamp, so the same array always gives the same bytes.
    """
    data = encode_idx(array)
    if gzip:
        data = gzip_lib.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)
