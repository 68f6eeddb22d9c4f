"""Counter-based random numbers: every bit is a pure function of (seed, call counter, index).

A :class:`Generator` holds a 64-bit seed and a call counter. Each draw takes the next counter
value and turns (seed, counter) into a :class:`StreamKey` of two uint32 words with SplitMix64.
Element ``i`` (flat C-order index) of a draw is ``hash32(i; k0, k1)``, a keyed variant of
Chris Wellons' lowbias32. Because nothing depends on how the work is split, the NumPy path can
process cache-sized chunks on several threads, and a saved key regenerates the same bits later
(dropout can keep only the key instead of the mask). NumPy's and CuPy's global RNGs are never
used. Every function takes the array module ``xp`` (numpy or cupy) and a key, a generator, or
``None`` for the default generator.
"""
import itertools
import math
import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

__all__ = [
    "StreamKey", "Generator", "default_generator", "manual_seed", "keep_threshold",
    "random_bits", "keep_mask", "masked_scale", "uniform", "normal", "set_num_threads",
    "get_num_threads", "hash_kernel", "HASH_KERNEL_SOURCE",
]

_MASK32 = 0xFFFFFFFF
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_LANE_SALT = 0xD1B54A32D192ED03
_MAX_ELEMENTS = 1 << 32
_UINT_OF_SIZE = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}

CHUNK_SIZE = 1 << 15
PARALLEL_THRESHOLD = 1 << 17

HASH_KERNEL_SOURCE = """
unsigned int x = (unsigned int)i + k0;
x ^= x >> 16;
x *= 0x7feb352dU;
x ^= k1;
x ^= x >> 15;
x *= 0x846ca68bU;
x ^= x >> 16;
h = x;
"""


def _splitmix64(z):
    """Return the SplitMix64 output for state ``z`` (Python ints, wrapped to 64 bits)."""
    z = (z + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class StreamKey(NamedTuple):
    """Immutable key of one draw: where it came from (seed, counter) and its hash words."""

    seed: int
    counter: int
    k0: int
    k1: int

    @classmethod
    def from_seed(cls, seed, counter):
        """Derive the key of draw number ``counter`` of a generator seeded with ``seed``.

        The key is output ``counter`` of a SplitMix64 sequence started from the mixed seed, so
        nearby seeds and consecutive counters give unrelated (k0, k1).
        """
        seed = operator.index(seed) & _MASK64
        counter = operator.index(counter) & _MASK64
        z = _splitmix64((_splitmix64(seed) + counter * _GOLDEN) & _MASK64)
        return cls(seed, counter, z & _MASK32, z >> 32)


def _lane(key):
    """Return (k0, k1) of an independent second stream tied to ``key`` (for Box-Muller)."""
    z = _splitmix64(((key.k1 << 32) | key.k0) ^ _LANE_SALT)
    return z & _MASK32, z >> 32


class Generator:
    """A seed plus a call counter; each draw consumes one counter value (one stream).

    Draws never share state with NumPy or CuPy, so results are identical on every backend
    and reproducible from ``get_state()``.
    """

    def __init__(self, seed=0):
        self._lock = threading.Lock()
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Reset to ``seed`` (any int, taken modulo 2**64) with the counter at zero."""
        with self._lock:
            self._seed = operator.index(seed) & _MASK64
            self._counter = 0
        return self

    @property
    def seed(self):
        """The 64-bit seed."""
        return self._seed

    @property
    def counter(self):
        """The number of streams drawn since seeding (the next counter value)."""
        return self._counter

    def next_key(self):
        """Consume one counter value and return its :class:`StreamKey`.

        Keeping the key is enough to regenerate the draw bit for bit later.
        """
        with self._lock:
            counter = self._counter
            self._counter = (counter + 1) & _MASK64
        return StreamKey.from_seed(self._seed, counter)

    def get_state(self):
        """Return the state as a plain dict of ints, suitable for checkpoints."""
        with self._lock:
            return {"seed": self._seed, "counter": self._counter}

    def set_state(self, state):
        """Restore a state produced by :meth:`get_state`."""
        seed = operator.index(state["seed"]) & _MASK64
        counter = operator.index(state["counter"]) & _MASK64
        with self._lock:
            self._seed, self._counter = seed, counter

    def __repr__(self):
        return f"Generator(seed={self._seed}, counter={self._counter})"


_default = Generator(0)


def default_generator():
    """Return the module-level generator used when no key or generator is given."""
    return _default


def manual_seed(seed):
    """Reseed the default generator (counter back to zero) and return it."""
    return _default.manual_seed(seed)


def _as_key(key):
    """Turn a StreamKey, a Generator, or None (default generator) into a StreamKey."""
    if key is None:
        key = _default
    if isinstance(key, Generator):
        return key.next_key()
    if isinstance(key, StreamKey):
        return key
    raise TypeError(f"expected StreamKey, Generator or None, got {type(key).__name__}")


_num_threads = max(1, min(os.cpu_count() or 1, 8))
_pool = None
_pool_lock = threading.Lock()
_local = threading.local()
_arange_cache = {}


def set_num_threads(n):
    """Set how many threads large NumPy draws use (1 disables threading)."""
    global _num_threads, _pool
    with _pool_lock:
        _num_threads = max(1, int(n))
        if _pool is not None:
            _pool.shutdown(wait=False)
            _pool = None


def get_num_threads():
    """Return how many threads large NumPy draws use."""
    return _num_threads


def _get_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_num_threads - 1, thread_name_prefix="minigrad-random")
        return _pool


def _scratch(name, dtype):
    """Per-thread reusable buffer of CHUNK_SIZE elements."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    tag = (name, np.dtype(dtype), CHUNK_SIZE)
    buf = bufs.get(tag)
    if buf is None:
        buf = bufs[tag] = np.empty(CHUNK_SIZE, dtype)
    return buf


def _arange(n):
    out = _arange_cache.get(n)
    if out is None:
        out = _arange_cache[n] = np.arange(n, dtype=np.uint32)
        out.flags.writeable = False
    return out


def _for_chunks(n, body):
    """Call ``body(start, stop)`` for every CHUNK_SIZE piece of ``range(n)``.

    Chunks keep the hash's intermediate buffers in cache; large arrays are shared among
    threads (NumPy ufuncs release the GIL). Threads claim chunks dynamically, which cannot
    change the result because every element depends on its index alone.
    """
    chunk = CHUNK_SIZE
    nchunks = -(-n // chunk)
    nthreads = min(_num_threads, nchunks) if n >= PARALLEL_THRESHOLD else 1
    claims = itertools.count()

    def work():
        for c in claims:
            if c >= nchunks:
                return
            body(c * chunk, min(n, (c + 1) * chunk))

    if nthreads <= 1:
        work()
        return
    pool = _get_pool()
    futures = [pool.submit(work) for _ in range(nthreads - 1)]
    try:
        work()
    finally:
        for fut in futures:
            fut.result()


def _mix(xp, x, t, k1, c):
    """Finish the keyed lowbias32 in place on ``x = index + k0``; ``t`` is scratch.

    ``c`` holds the constants (16, 15, M1, M2) and ``k1`` the key word, as NumPy 0-d arrays
    on the chunked path (cheaper to dispatch than scalars) or as NumPy scalars otherwise.
    """
    s16, s15, m1, m2 = c
    xp.right_shift(x, s16, out=t)
    xp.bitwise_xor(x, t, out=x)
    xp.multiply(x, m1, out=x)
    xp.bitwise_xor(x, k1, out=x)
    xp.right_shift(x, s15, out=t)
    xp.bitwise_xor(x, t, out=x)
    xp.multiply(x, m2, out=x)
    xp.right_shift(x, s16, out=t)
    xp.bitwise_xor(x, t, out=x)


def _u32(value):
    """A read-only NumPy 0-d uint32 array: the cheapest constant operand for a ufunc."""
    arr = np.array(value & _MASK32, dtype=np.uint32)
    arr.flags.writeable = False
    return arr


_CONSTS = (np.uint32(16), np.uint32(15), np.uint32(0x7FEB352D), np.uint32(0x846CA68B))
_CONSTS_0D = tuple(_u32(int(v)) for v in _CONSTS)


def _hash_chunk(out, start, k0, k1):
    """Write hash32(i; k0, k1) for i in [start, start + len(out)) into ``out`` (NumPy).

    ``k1`` is a 0-d array from :func:`_u32`.
    """
    np.add(_arange(CHUNK_SIZE)[:out.size], np.uint32((k0 + start) & _MASK32), out=out)
    _mix(np, out, _scratch("t", np.uint32)[:out.size], k1, _CONSTS_0D)


_kernel_cache = {}


def hash_kernel(xp):
    """Return a cached ``xp.ElementwiseKernel`` for the hash, or None if ``xp`` has none.

    The kernel evaluates HASH_KERNEL_SOURCE, the same function as the array-op path, in a
    single pass; it is built lazily so that nothing here imports CuPy.
    """
    if not hasattr(xp, "ElementwiseKernel"):
        return None
    kernel = _kernel_cache.get(id(xp))
    if kernel is None:
        kernel = xp.ElementwiseKernel("uint32 k0, uint32 k1", "uint32 h", HASH_KERNEL_SOURCE,
                                      "minigrad_hash32")
        _kernel_cache[id(xp)] = kernel
    return kernel


def _hash_flat(xp, n, k0, k1):
    """Return hash32(i; k0, k1) for i in range(n) as a flat uint32 array of module ``xp``."""
    if n > _MAX_ELEMENTS:
        raise ValueError(f"at most 2**32 elements per draw, got {n}")
    if xp is np:
        out = np.empty(n, np.uint32)
        k1_0d = _u32(k1)
        _for_chunks(n, lambda a, b: _hash_chunk(out[a:b], a, k0, k1_0d))
        return out
    kernel = hash_kernel(xp)
    if kernel is not None:
        out = xp.empty(n, dtype=xp.uint32)
        kernel(np.uint32(k0), np.uint32(k1), out)
        return out
    x = xp.arange(n, dtype=xp.uint32)
    xp.add(x, np.uint32(k0), out=x)
    _mix(xp, x, xp.empty_like(x), np.uint32(k1), _CONSTS)
    return x


def _size(shape):
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return shape, math.prod(shape)


def random_bits(xp, shape, key=None):
    """Return uint32 random bits of ``shape``: element i is hash32(i; key.k0, key.k1).

    The same key always returns the same array, whatever the backend or thread count.
    """
    shape, n = _size(shape)
    key = _as_key(key)
    return _hash_flat(xp, n, key.k0, key.k1).reshape(shape)


def keep_threshold(keep):
    """Return T = ceil(keep * 2**32), so that ``h < T`` keeps with P(keep) = T / 2**32 exactly.

    The comparison is done on the 32-bit integers rather than on float uniforms: it is cheaper
    and resolves keep probabilities to 2**-32 (float32 uniforms would stop at 2**-24).
    """
    keep = float(keep)
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must lie in [0, 1], got {keep}")
    return math.ceil(keep * 4294967296.0)


def keep_mask(xp, shape, keep, key=None):
    """Return a bool array of ``shape``, True where kept: hash32(i) < keep_threshold(keep).

    keep == 1 keeps everything and keep == 0 drops everything (the key is consumed anyway).
    On NumPy the mask is produced chunk by chunk, on several threads for large shapes.
    """
    shape, n = _size(shape)
    key = _as_key(key)
    thresh = keep_threshold(keep)
    if thresh > _MASK32 or thresh == 0:
        return xp.full(shape, thresh > 0, dtype=bool)
    if xp is not np:
        return (_hash_flat(xp, n, key.k0, key.k1) < np.uint32(thresh)).reshape(shape)
    out = np.empty(n, bool)
    t, k1 = _u32(thresh), _u32(key.k1)

    def body(a, b):
        h = _scratch("h", np.uint32)[:b - a]
        _hash_chunk(h, a, key.k0, k1)
        np.less(h, t, out=out[a:b])

    _for_chunks(n, body)
    return out.reshape(shape)


def _check_out(arr, shape, dtype, name):
    if arr.shape != shape or arr.dtype != dtype or not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {dtype} array of shape {shape}")


def masked_scale(xp, x, keep, scale, key=None, out=None, mask_out=None):
    """Return y = where(mask, x * scale, 0) with mask = keep_mask(xp, x.shape, keep, key).

    This is the fused dropout step: on NumPy the mask is generated and applied chunk by chunk,
    so it never has to exist as a whole unless ``mask_out`` (a bool array) asks for it.
    Dropped entries are exactly zero even where x is inf or nan (the mask is applied to the
    bit pattern). ``out`` may be ``x`` itself for an in-place update.
    """
    key = _as_key(key)
    thresh = keep_threshold(keep)
    shape, n = x.shape, x.size
    scale = x.dtype.type(scale)
    if out is not None:
        _check_out(out, shape, x.dtype, "out")
    if mask_out is not None:
        _check_out(mask_out, shape, np.dtype(bool), "mask_out")
    if xp is not np or thresh > _MASK32 or thresh == 0:
        if thresh > _MASK32 or thresh == 0:
            mask = xp.full(shape, thresh > 0, dtype=bool)
        else:
            mask = (_hash_flat(xp, n, key.k0, key.k1) < np.uint32(thresh)).reshape(shape)
        y = xp.where(mask, x * scale, x.dtype.type(0))
        if mask_out is not None:
            mask_out[...] = mask
        if out is not None:
            out[...] = y
            return out
        return y
    if n > _MAX_ELEMENTS:
        raise ValueError(f"at most 2**32 elements per draw, got {n}")
    src = np.ascontiguousarray(x).reshape(-1)
    y = np.empty(shape, x.dtype) if out is None else out
    flat_y = y.reshape(-1)
    bits_y = flat_y.view(_UINT_OF_SIZE[x.dtype.itemsize])
    flat_m = None if mask_out is None else mask_out.reshape(-1)
    t, k1 = _u32(thresh), _u32(key.k1)

    def body(a, b):
        m = b - a
        h = _scratch("h", np.uint32)[:m]
        mask = _scratch("m", bool)[:m] if flat_m is None else flat_m[a:b]
        ones = _scratch("u", bits_y.dtype)[:m]
        _hash_chunk(h, a, key.k0, k1)
        np.less(h, t, out=mask)
        np.copyto(ones, mask)
        np.multiply(src[a:b], scale, out=flat_y[a:b])
        np.multiply(bits_y[a:b], ones, out=bits_y[a:b])

    _for_chunks(n, body)
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
    uniforms drawn in low precision would round to 1.0 and bias thresholds, so the caller
    compares or casts in float32 instead.
    """
    ftype = _compute_dtype(dtype)
    return _unit(xp, random_bits(xp, shape, key), ftype)


def normal(xp, shape, key=None, dtype=np.float32):
    """Return standard normals of ``shape`` by Box-Muller: sqrt(-2 ln u1) * cos(2 pi u2).

    u2 comes from the key's own stream and u1 from an independent second stream derived
    from the key. u1 = (h1 + 1) * 2**-32 lies in (0, 1], so log never sees zero and the
    tails reach about 6.7 sigma. float16 and bfloat16 requests get float32, as for uniform.
    """
    ftype = _compute_dtype(dtype)
    shape, n = _size(shape)
    key = _as_key(key)
    u2 = _unit(xp, _hash_flat(xp, n, key.k0, key.k1), ftype)
    k0, k1 = _lane(key)
    r = _hash_flat(xp, n, k0, k1).astype(ftype)
    r += ftype(1.0)
    r *= ftype(2.0 ** -32)
    r = xp.sqrt(ftype(-2.0) * xp.log(r))
    u2 *= ftype(2.0 * math.pi)
    return (r * xp.cos(u2)).reshape(shape)
