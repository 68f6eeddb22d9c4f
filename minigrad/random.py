"""Counter-based random numbers: every bit is a pure function of (seed, call counter, index).

A :class:`Generator` holds a 64-bit seed and a call counter. Each draw takes the next counter
value and turns (seed, counter) into a :class:`StreamKey` (uint32 words k0, k1) with SplitMix64.
Element ``i`` (flat C-order index) of a draw gets the 32 bits ``h(i) = A(i) << 24 | B(i)``:
A(i) is byte ``i % 8`` of the 64-bit hash of word ``i // 8`` in lane A, B(i) the top 24 bits
of half ``i % 2`` of the hash of word ``i // 2`` in lane B. Both lanes hash with a keyed
SplitMix64 finalizer (two multiplies, three xor-shifts, a second key word injected mid-way).
The layout makes masks cheap: ``h < T`` is settled by A alone unless A equals the top byte of
T (1 element in 256), so mask hashing costs one byte per element and only ties touch lane B.

Nothing depends on how work is split, so NumPy runs in cache-sized chunks on several threads,
and a saved key regenerates the same bits later (dropout may keep the key instead of the mask).
NumPy's and CuPy's global RNGs are never used. Functions take the array module ``xp`` (numpy
or cupy) and a StreamKey, a Generator, or ``None`` for the default generator.
"""
import itertools
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minigrad.generator import GOLDEN as _GOLDEN
from minigrad.generator import MASK32 as _MASK32
from minigrad.generator import MASK64 as _MASK64
from minigrad.generator import MIX1 as _MIX1
from minigrad.generator import MIX2 as _MIX2
from minigrad.generator import (Generator, StreamKey, default_generator,  # noqa: F401
                                manual_seed)
from minigrad.generator import as_key as _as_key
from minigrad.generator import splitmix64 as _splitmix64

__all__ = [
    "StreamKey", "Generator", "default_generator", "manual_seed", "keep_threshold",
    "random_bits", "keep_mask", "masked_scale", "uniform", "normal", "set_num_threads",
    "get_num_threads", "hash_kernel", "HASH_KERNEL_PREAMBLE", "HASH_KERNEL_SOURCE",
]

_MASK24 = (1 << 24) - 1
_WORD_SALTS = (0x5851F42D4C957F2D, 0xD1B54A32D192ED03, 0xA0761D6478BD642F)
_LANE_SALT = 0xE7037ED1A0B428DB
_UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_LITTLE_ENDIAN = sys.byteorder == "little"

CHUNK_SIZE = 1 << 18
PARALLEL_CHUNK_SIZE = 1 << 20
PARALLEL_THRESHOLD = 1 << 21
APPLY_SIZE = 1 << 15

HASH_KERNEL_PREAMBLE = """
__device__ unsigned long long minigrad_hash64(unsigned long long q, unsigned long long key,
                                              unsigned long long key2) {
    unsigned long long z = q * 0x9E3779B97F4A7C15ULL + key;
    z ^= z >> 30; z *= 0xBF58476D1CE4E5B9ULL; z ^= key2;
    z ^= z >> 27; z *= 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
"""

HASH_KERNEL_SOURCE = """
unsigned long long za = minigrad_hash64((unsigned long long)i >> 3, ka, ka2);
unsigned long long zb = minigrad_hash64((unsigned long long)i >> 1, kb, kb2);
unsigned int top = (unsigned int)(za >> ((i & 7) * 8)) & 0xFFu;
h = (top << 24) | ((unsigned int)(zb >> ((i & 1) * 32)) >> 8);
"""


def _words(key):
    """The four 64-bit hash words: lane A key and mid-way key, lane B key and mid-way key."""
    word = (key.k1 << 32) | key.k0
    return (word,) + tuple(_splitmix64(word ^ salt) for salt in _WORD_SALTS)


def _lane(key):
    """Return the key of an independent second stream tied to ``key`` (for Box-Muller)."""
    z = _splitmix64(((key.k1 << 32) | key.k0) ^ _LANE_SALT)
    return StreamKey(key.seed, key.counter, z & _MASK32, z >> 32)


_num_threads = max(1, min(os.cpu_count() or 1, 8))
_pool, _pool_size, _pool_lock = None, 0, threading.Lock()
_local = threading.local()
_weyl_table = np.empty(0, np.uint64)


def set_num_threads(n):
    """Set how many threads (1 to 8) large NumPy draws use; 1 disables threading."""
    global _num_threads
    _num_threads = max(1, min(int(n), 8))


def get_num_threads():
    """Return how many threads large NumPy draws use."""
    return _num_threads


def _get_pool(workers):
    """Return the shared pool, with exactly as many threads as the largest request so far.

    A pool larger than needed would start extra threads whenever a worker is slow to report
    idle, and each new thread would fault in its own scratch buffers and caches.
    """
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(workers, "minigrad-random"), workers
        return _pool


def _for_chunks(n, body):
    """Call ``body(start, stop)`` for every chunk of ``range(n)``; chunks start at multiples of 8.

    Chunks keep the hash buffers in cache. Large arrays use bigger chunks shared among threads
    (NumPy ufuncs release the GIL; bigger calls mean fewer GIL hand-offs). Threads claim chunks
    dynamically, which cannot change the result since every element depends on its index only.
    """
    nthreads = _num_threads if n >= PARALLEL_THRESHOLD else 1
    chunk = max(8, -(-(CHUNK_SIZE if nthreads == 1 else PARALLEL_CHUNK_SIZE) // 8) * 8)
    nchunks = -(-n // chunk)
    nthreads = min(nthreads, nchunks)
    claims = itertools.count()

    def work():
        for c in claims:
            if c >= nchunks:
                return
            body(c * chunk, min(n, (c + 1) * chunk))

    if nthreads <= 1:
        return work()
    pool = _get_pool(nthreads - 1)
    futures = [pool.submit(work) for _ in range(nthreads - 1)]
    try:
        work()
    finally:
        for fut in futures:
            fut.result()


def _scratch(name, dtype, size):
    """Per-thread reusable buffer, reallocated only when a larger one is needed."""
    bufs = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get((name, dtype))
    if buf is None or buf.size < size:
        buf = bufs[(name, dtype)] = np.empty(size, dtype)
    return buf[:size]


def _weyl(n):
    """Read-only ``arange(n) * GOLDEN`` in uint64 (the index part of the hash), cached."""
    global _weyl_table
    table = _weyl_table
    if table.size < n:
        table = np.multiply(np.arange(n, dtype=np.uint64), np.uint64(_GOLDEN))
        table.flags.writeable = False
        _weyl_table = table
    return table[:n]


def _u64(value):
    """A NumPy 0-d uint64 array: a cheaper ufunc operand than a scalar (chunked NumPy path)."""
    return np.array(value & _MASK64, dtype=np.uint64)


_ZERO_0D = _u64(0)
_CONSTS = tuple(np.uint64(c) for c in (30, 27, 31, _MIX1, _MIX2))
_CONSTS_0D = tuple(_u64(int(c)) for c in _CONSTS)


def _mix(xp, z, t, key2, consts):
    """Finish the keyed SplitMix64 finalizer in place on z = q * GOLDEN + key (t: scratch)."""
    s30, s27, s31, m1, m2 = consts
    xp.right_shift(z, s30, out=t)
    xp.bitwise_xor(z, t, out=z)
    xp.multiply(z, m1, out=z)
    xp.bitwise_xor(z, key2, out=z)
    xp.right_shift(z, s27, out=t)
    xp.bitwise_xor(z, t, out=z)
    xp.multiply(z, m2, out=z)
    xp.right_shift(z, s31, out=t)
    xp.bitwise_xor(z, t, out=z)


def _hash64(xp, q, key, key2):
    """Hash the uint64 word indices ``q`` in place and return them."""
    xp.multiply(q, np.uint64(_GOLDEN), out=q)
    xp.add(q, np.uint64(key), out=q)
    _mix(xp, q, xp.empty_like(q), np.uint64(key2), _CONSTS)
    return q


def _lanes(xp, z, dtype):
    """View 64-bit hashes as consecutive narrower lanes, least significant lane first."""
    if _LITTLE_ENDIAN or xp is not np:
        return z.view(dtype)
    return z.astype("<u8").view(np.dtype(dtype).newbyteorder("<")).astype(dtype)


def _low24(xp, idx, kb, kb2):
    """Return B(i), the low 24 bits of h(i), for an integer array of element indices."""
    idx = idx.astype(xp.uint64)
    z = _hash64(xp, idx >> np.uint64(1), kb, kb2)
    z >>= (idx & np.uint64(1)) * np.uint64(32)
    return (z & np.uint64(_MASK32)) >> np.uint64(8)


_kernel_cache = {}


def hash_kernel(xp):
    """Return a cached ``xp.ElementwiseKernel`` computing h(i), or None if ``xp`` has none.

    One pass of HASH_KERNEL_SOURCE (each element rehashes its words, cheap on a GPU) gives the
    same bits as the array-op path; built lazily so that nothing here imports CuPy.
    """
    if not hasattr(xp, "ElementwiseKernel"):
        return None
    kernel = _kernel_cache.get(id(xp))
    if kernel is None:
        kernel = _kernel_cache[id(xp)] = xp.ElementwiseKernel(
            "uint64 ka, uint64 ka2, uint64 kb, uint64 kb2", "uint32 h", HASH_KERNEL_SOURCE,
            "minigrad_counter_hash", preamble=HASH_KERNEL_PREAMBLE)
    return kernel


def _bits_flat(xp, n, key):
    """Return h(i) for i in range(n) as a flat uint32 array of module ``xp`` (no chunking)."""
    ka, ka2, kb, kb2 = _words(key)
    kernel = hash_kernel(xp)
    if kernel is not None:
        out = xp.empty(n, dtype=xp.uint32)
        kernel(np.uint64(ka), np.uint64(ka2), np.uint64(kb), np.uint64(kb2), out)
        return out
    za = _hash64(xp, xp.arange((n + 7) // 8, dtype=xp.uint64), ka, ka2)
    zb = _hash64(xp, xp.arange((n + 1) // 2, dtype=xp.uint64), kb, kb2)
    top = _lanes(xp, za, xp.uint8)[:n].astype(xp.uint32)
    return (top << np.uint32(24)) | (_lanes(xp, zb, xp.uint32)[:n] >> np.uint32(8))


class _Decider:
    """Chunked keep decisions ``h(i) < T`` on NumPy from lane A, collecting ties for lane B."""

    def __init__(self, key, thresh):
        self.ka, ka2, self.kb, self.kb2 = _words(key)
        self.ka2 = _u64(ka2)
        self.t_hi, self.t_lo = np.array(thresh >> 24, np.uint8), thresh & _MASK24
        self.ties = []

    def __call__(self, start, stop, out):
        """Write the decisions for elements [start, stop) into the bool array ``out``.

        A(i) < T_hi keeps and A(i) > T_hi drops; a tie A(i) == T_hi is kept for now (dropped
        outright when T_lo == 0) and its index saved for :meth:`finish`.
        """
        m, words = stop - start, (stop - start + 7) >> 3
        z = _scratch("z", np.uint64, words)
        np.add(_weyl(words), np.uint64(((start >> 3) * _GOLDEN + self.ka) & _MASK64), out=z)
        _mix(np, z, _scratch("t", np.uint64, words), self.ka2, _CONSTS_0D)
        top = _lanes(np, z, np.uint8)[:m]
        if self.t_lo == 0:
            np.less(top, self.t_hi, out=out)
            return
        np.less_equal(top, self.t_hi, out=out)
        eq = _scratch("eq", bool, words * 8)
        eq[m:] = False
        np.equal(top, self.t_hi, out=eq[:m])
        eq_words, hit = eq.view(np.uint64), _scratch("hit", bool, words)
        np.not_equal(eq_words, _ZERO_0D, out=hit)
        hits = np.flatnonzero(hit)
        if hits.size:
            pos = np.flatnonzero(eq_words[hits].view(bool))
            self.ties.append(hits[pos >> 3] * 8 + (pos & 7) + start)

    def finish(self):
        """Return the tied indices whose B(i) >= T_lo: the ones to drop after all."""
        if not self.ties:
            return np.empty(0, np.intp)
        idx = np.concatenate(self.ties)
        return idx[_low24(np, idx, self.kb, self.kb2) >= np.uint64(self.t_lo)]


def _size(shape):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return shape, math.prod(shape)


def random_bits(xp, shape, key=None):
    """Return uint32 random bits of ``shape``: element i is h(i) of the key's stream.

    The same key always returns the same array, whatever the backend or thread count.
    """
    shape, n = _size(shape)
    return _bits_flat(xp, n, _as_key(key)).reshape(shape)


def keep_threshold(keep):
    """Return T = ceil(keep * 2**32), so that ``h < T`` keeps with P(keep) = T / 2**32 exactly.

    Integer comparison (u = h * 2**-32 < keep) is cheaper than drawing float uniforms and
    resolves keep probabilities to 2**-32, where float32 uniforms would stop at 2**-24.
    """
    keep = float(keep)
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must lie in [0, 1], got {keep}")
    return math.ceil(keep * 4294967296.0)


def keep_mask(xp, shape, keep, key=None):
    """Return a bool array of ``shape``, True where kept: h(i) < keep_threshold(keep).

    keep == 1 keeps everything and keep == 0 drops everything (the key is consumed anyway).
    On NumPy the mask comes chunk by chunk from lane A, on several threads for large shapes;
    lane B is evaluated only for the ~1/256 of elements that lane A leaves undecided.
    """
    shape, n = _size(shape)
    key, thresh = _as_key(key), keep_threshold(keep)
    if thresh > _MASK32 or thresh == 0:
        return xp.full(shape, thresh > 0, dtype=bool)
    if xp is not np:
        return (_bits_flat(xp, n, key) < np.uint32(thresh)).reshape(shape)
    out, decide = np.empty(n, bool), _Decider(key, thresh)
    _for_chunks(n, lambda a, b: decide(a, b, out[a:b]))
    out[decide.finish()] = False
    return out.reshape(shape)


def masked_scale(xp, x, keep, scale, key=None, out=None, mask_out=None):
    """Return y = where(mask, x * scale, 0) with mask = keep_mask(xp, x.shape, keep, key).

    The fused dropout step: on NumPy the mask is generated and applied chunk by chunk, so it
    never exists as a whole unless ``mask_out`` (a bool array) asks for it. Dropped entries
    are exactly zero even where x is inf or nan: the 0/1 mask multiplies the bit pattern of
    x * scale. ``out`` may be ``x`` itself for an in-place update.
    """
    key, thresh = _as_key(key), keep_threshold(keep)
    shape, n, scale = x.shape, x.size, x.dtype.type(scale)
    for arr, dtype, name in ((out, x.dtype, "out"), (mask_out, np.dtype(bool), "mask_out")):
        if arr is not None and (arr.shape, arr.dtype, arr.flags.c_contiguous) != (shape, dtype, 1):
            raise ValueError(f"{name} must be a C-contiguous {dtype} array of shape {shape}")
    if xp is not np or thresh > _MASK32 or thresh == 0:
        mask = keep_mask(xp, shape, keep, key)
        y = xp.where(mask, x * scale, x.dtype.type(0))
        if mask_out is not None:
            mask_out[...] = mask
        if out is None:
            return y
        out[...] = y
        return out
    src = np.ascontiguousarray(x).reshape(-1)
    y = np.empty(shape, x.dtype) if out is None else out
    flat_y = y.reshape(-1)
    bits_y = flat_y.view(_UINT_OF_SIZE[x.dtype.itemsize])
    flat_m = None if mask_out is None else mask_out.reshape(-1)
    decide = _Decider(key, thresh)

    def body(a, b):
        mask = _scratch("mask", bool, b - a) if flat_m is None else flat_m[a:b]
        decide(a, b, mask)
        for s in range(a, b, APPLY_SIZE):
            e = min(b, s + APPLY_SIZE)
            ones = _scratch("ones", bits_y.dtype, e - s)
            np.copyto(ones, mask[s - a:e - a])
            np.multiply(src[s:e], scale, out=flat_y[s:e])
            np.multiply(bits_y[s:e], ones, out=bits_y[s:e])

    _for_chunks(n, body)
    dropped = decide.finish()
    flat_y[dropped] = 0
    if flat_m is not None:
        flat_m[dropped] = False
    return y


def _compute_dtype(dtype):
    """float64 requests get float64; everything else (float32, float16, bfloat16) float32."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return np.float32
    return np.float64 if dt.kind == "f" and dt.itemsize >= 8 else np.float32


def _unit(xp, bits, ftype):
    """Map uint32 bits to [0, 1): float32 from the top 24 bits, float64 at 32-bit resolution."""
    if ftype == np.float32:
        bits = xp.right_shift(bits, np.uint32(8))
        return xp.multiply(bits.astype(np.float32), np.float32(2.0 ** -24))
    return xp.multiply(bits.astype(np.float64), 2.0 ** -32)


def uniform(xp, shape, key=None, dtype=np.float32):
    """Return uniforms in [0, 1) of ``shape`` from random_bits(xp, shape, key).

    float32 uses the top 24 bits, (h >> 8) * 2**-24, so every value is exact and below 1;
    float64 uses all 32 bits, h * 2**-32. Requests for float16 or bfloat16 get float32:
    low-precision uniforms would round up to 1.0 and bias thresholds, so the caller compares
    or casts in float32 instead.
    """
    return _unit(xp, random_bits(xp, shape, key), _compute_dtype(dtype))


def normal(xp, shape, key=None, dtype=np.float32):
    """Return standard normals of ``shape`` by Box-Muller: sqrt(-2 ln u1) * cos(2 pi u2).

    u2 comes from the key's own stream and u1 from an independent second stream derived
    from the key. u1 = (h1 + 1) * 2**-32 lies in (0, 1], so log never sees zero and the
    tails reach about 6.7 sigma. float16 and bfloat16 requests get float32, as for uniform.
    """
    ftype = _compute_dtype(dtype)
    shape, n = _size(shape)
    key = _as_key(key)
    u2 = _unit(xp, _bits_flat(xp, n, key), ftype)
    r = _bits_flat(xp, n, _lane(key)).astype(ftype)
    r += ftype(1.0)
    r *= ftype(2.0 ** -32)
    r = xp.sqrt(ftype(-2.0) * xp.log(r))
    u2 *= ftype(2.0 * math.pi)
    return (r * xp.cos(u2)).reshape(shape)
