"""Tests for minigrad.random: determinism, chunking invariance, and statistical quality."""
import math

import numpy as np
import pytest
from scipy import stats

from minigrad import random as mr

M64 = (1 << 64) - 1


class GenericXP:
    """numpy behind a different module object, so the library takes its generic array path."""

    def __getattr__(self, name):
        return getattr(np, name)


GENERIC = GenericXP()


def reference_bits(key, i):
    """h(i) in Python ints, written from HASH_KERNEL_SOURCE (the CuPy kernel's formula)."""
    ka, ka2, kb, kb2 = mr._words(key)

    def hash64(q, k, k2):
        z = (q * 0x9E3779B97F4A7C15 + k) & M64
        z ^= z >> 30
        z = (z * 0xBF58476D1CE4E5B9) & M64
        z ^= k2
        z ^= z >> 27
        z = (z * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    top = (hash64(i >> 3, ka, ka2) >> (8 * (i & 7))) & 0xFF
    low = ((hash64(i >> 1, kb, kb2) >> (32 * (i & 1))) & 0xFFFFFFFF) >> 8
    return (top << 24) | low


@pytest.fixture
def small_chunks(monkeypatch):
    """Tiny chunks (rounded to 24) run on two threads for every size."""
    monkeypatch.setattr(mr, "CHUNK_SIZE", 20)
    monkeypatch.setattr(mr, "PARALLEL_CHUNK_SIZE", 20)
    monkeypatch.setattr(mr, "APPLY_SIZE", 16)
    monkeypatch.setattr(mr, "PARALLEL_THRESHOLD", 0)
    threads = mr.get_num_threads()
    mr.set_num_threads(2)
    yield
    mr.set_num_threads(threads)


def key(seed=1, counter=0):
    return mr.StreamKey.from_seed(seed, counter)


def test_bits_match_reference_formula():
    k = key(123, 45)
    bits = mr.random_bits(np, (1000,), k)
    assert bits.dtype == np.uint32
    for i in list(range(20)) + [511, 998, 999]:
        assert int(bits[i]) == reference_bits(k, i)


def test_same_key_same_bits():
    k = key(7, 3)
    assert np.array_equal(mr.random_bits(np, (33, 17), k), mr.random_bits(np, (33, 17), k))
    assert np.array_equal(mr.keep_mask(np, (999,), 0.7, k), mr.keep_mask(np, (999,), 0.7, k))
    assert np.array_equal(mr.uniform(np, 50, k), mr.uniform(np, 50, k))
    assert np.array_equal(mr.normal(np, 50, k, np.float64), mr.normal(np, 50, k, np.float64))


def test_bits_are_positional_not_shape_dependent():
    k = key(2, 9)
    flat = mr.random_bits(np, (60,), k)
    assert np.array_equal(mr.random_bits(np, (3, 4, 5), k).reshape(-1), flat)
    assert np.array_equal(mr.random_bits(np, (13,), k), flat[:13])


@pytest.mark.parametrize("shape", [(3, 7, 11), (1,), (0, 5), (5, 9), (1021,), (64, 33)])
@pytest.mark.parametrize("keep", [0.9, 0.5, 0.123456789, 1 - 2 ** -30, 2 ** -30])
def test_chunked_paths_equal_plain_path(small_chunks, shape, keep):
    k = key(11, 5)
    n = math.prod(shape)
    bits = mr.random_bits(GENERIC, shape, k)
    assert np.array_equal(mr.random_bits(np, shape, k), bits)
    expected = bits < np.uint32(mr.keep_threshold(keep))
    assert np.array_equal(mr.keep_mask(GENERIC, shape, keep, k), expected)
    assert np.array_equal(mr.keep_mask(np, shape, keep, k), expected)
    x = np.random.default_rng(n).standard_normal(shape).astype(np.float32)
    mask = np.empty(shape, bool)
    y = mr.masked_scale(np, x, keep, 1.5, k, mask_out=mask)
    assert np.array_equal(mask, expected)
    assert np.array_equal(y, np.where(expected, x * np.float32(1.5), np.float32(0)))
    assert np.array_equal(mr.masked_scale(GENERIC, x, keep, 1.5, k), y)


def test_ties_are_resolved_exactly():
    k = key(5, 5)
    bits = mr.random_bits(np, (1 << 16,), k)
    thresh = int(np.sort(bits)[30000]) + 1
    keep = (thresh - 0.5) / 2 ** 32
    assert mr.keep_threshold(keep) == thresh
    ties = (bits >> np.uint32(24)) == np.uint32(thresh >> 24)
    assert ties.sum() > 100
    mask = mr.keep_mask(np, bits.shape, keep, k)
    assert np.array_equal(mask, bits < np.uint32(thresh))
    assert mask.sum() == 30001


def test_thread_count_does_not_change_results(monkeypatch):
    monkeypatch.setattr(mr, "CHUNK_SIZE", 1 << 10)
    monkeypatch.setattr(mr, "PARALLEL_CHUNK_SIZE", 1 << 11)
    monkeypatch.setattr(mr, "PARALLEL_THRESHOLD", 0)
    threads = mr.get_num_threads()
    k = key(3, 1)
    x = np.random.default_rng(0).standard_normal((70, 301))
    try:
        results = []
        for n in (1, 2, 3):
            mr.set_num_threads(n)
            results.append((mr.keep_mask(np, x.shape, 0.8, k), mr.masked_scale(np, x, 0.8, 2, k)))
    finally:
        mr.set_num_threads(threads)
    for mask, y in results[1:]:
        assert np.array_equal(mask, results[0][0])
        assert np.array_equal(y, results[0][1])


def test_different_seeds_and_counters_differ():
    base = mr.random_bits(np, 4096, key(1, 0))
    for other in (key(2, 0), key(1, 1), key(1 << 63, 0), key(0, 0)):
        assert np.mean(mr.random_bits(np, 4096, other) == base) < 0.01


def test_generator_counter_state_and_reproduction():
    gen = mr.Generator(42)
    assert gen.seed == 42 and gen.counter == 0
    first = mr.keep_mask(np, (100,), 0.5, gen)
    state = gen.get_state()
    assert state == {"seed": 42, "counter": 1}
    after = [mr.random_bits(np, 64, gen) for _ in range(3)]
    gen.set_state(state)
    assert all(np.array_equal(a, mr.random_bits(np, 64, gen)) for a in after)
    assert np.array_equal(mr.keep_mask(np, (100,), 0.5, mr.Generator(42)), first)
    assert gen.counter == 4


def test_saved_key_regenerates_mask():
    gen = mr.Generator(9)
    gen.next_key()
    saved = gen.next_key()
    assert saved == mr.StreamKey.from_seed(9, 1)
    with pytest.raises(AttributeError):
        saved.k0 = 0
    mask = mr.keep_mask(np, (40, 50), 0.3, saved)
    assert np.array_equal(mr.keep_mask(np, (40, 50), 0.3, saved), mask)


def test_default_generator_and_manual_seed():
    mr.manual_seed(1234)
    gen = mr.default_generator()
    assert gen.seed == 1234 and gen.counter == 0
    a = mr.random_bits(np, 16)
    mr.manual_seed(1234)
    assert np.array_equal(mr.random_bits(np, 16, None), a)
    assert gen.counter == 1


def test_numpy_global_rng_untouched():
    before = np.random.get_state()
    mr.keep_mask(np, (300, 300), 0.9, key())
    mr.normal(np, 1000, key())
    mr.uniform(np, 1000, key(), np.float64)
    after = np.random.get_state()
    assert all(np.array_equal(a, b) for a, b in zip(before[1:], after[1:]))


@pytest.mark.parametrize("keep", [0.001, 0.1, 1 / 3, 0.5, 0.9, 0.999])
def test_keep_fraction_binomial(keep):
    n = 1 << 20
    mask = mr.keep_mask(np, (n,), keep, key(77, int(keep * 1000)))
    p = mr.keep_threshold(keep) / 2 ** 32
    assert stats.binomtest(int(mask.sum()), n, p).pvalue > 1e-4


def test_keep_one_and_zero():
    x = np.random.default_rng(0).standard_normal((64, 65)).astype(np.float32)
    for xp in (np, GENERIC):
        assert mr.keep_mask(xp, x.shape, 1.0, key()).all()
        assert not mr.keep_mask(xp, x.shape, 0.0, key()).any()
        assert np.array_equal(mr.masked_scale(xp, x, 1.0, 1.0, key()), x)
        assert not mr.masked_scale(xp, x, 0.0, 1.0, key()).any()
    assert mr.keep_threshold(1.0) == 2 ** 32 and mr.keep_threshold(0.0) == 0
    with pytest.raises(ValueError):
        mr.keep_threshold(1.5)


def test_keep_one_never_drops_low_precision():
    x = np.random.default_rng(1).standard_normal((257, 129)).astype(np.float16)
    mask = np.empty(x.shape, bool)
    y = mr.masked_scale(np, x, 1.0, 1.0, key(), mask_out=mask)
    assert mask.all() and y.dtype == np.float16 and np.array_equal(y, x)
    assert mr.keep_mask(np, (1 << 18,), 1.0 - 1e-12, key()).all()


def test_masked_scale_exact_zeros_inplace_and_strided():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 80))
    x[::7, ::3] = np.inf
    x[1::5, ::4] = np.nan
    k = key(4, 4)
    mask = mr.keep_mask(np, x.shape, 0.6, k)
    y = mr.masked_scale(np, x, 0.6, 2.5, k)
    assert np.all(y[~mask] == 0)
    np.testing.assert_array_equal(y[mask], x[mask] * 2.5)
    xt = np.asfortranarray(x)
    np.testing.assert_array_equal(mr.masked_scale(np, xt, 0.6, 2.5, k), y)
    inplace = x.copy()
    assert mr.masked_scale(np, inplace, 0.6, 2.5, k, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, y)
    with pytest.raises(ValueError):
        mr.masked_scale(np, x, 0.6, 2.5, k, out=np.empty((80, 50)))


def test_bit_balance():
    bits = mr.random_bits(np, (1 << 18,), key(31, 7))
    n = bits.size
    for b in range(32):
        ones = int(np.count_nonzero((bits >> np.uint32(b)) & np.uint32(1)))
        assert stats.binomtest(ones, n, 0.5).pvalue > 1e-4, b


def test_serial_correlation_of_uniforms():
    u = mr.uniform(np, 1 << 20, key(8, 8), np.float64)
    r = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(r) < 4 / math.sqrt(u.size)
    for lag in (2, 7, 8, 9, 64):
        assert abs(np.corrcoef(u[:-lag], u[lag:])[0, 1]) < 4 / math.sqrt(u.size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_range_and_ks(dtype):
    u = mr.uniform(np, (512, 256), key(12, 1), dtype)
    assert u.dtype == dtype and u.min() >= 0 and u.max() < 1
    assert stats.kstest(u.reshape(-1), "uniform").pvalue > 1e-4


def test_uniform_float32_is_top_24_bits():
    k = key(6, 6)
    bits = mr.random_bits(np, 1000, k)
    expected = (bits >> np.uint32(8)).astype(np.float64) / 2 ** 24
    np.testing.assert_array_equal(mr.uniform(np, 1000, k, np.float32), expected)


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16"])
def test_low_precision_requests_get_float32(dtype):
    if dtype == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    assert mr.uniform(np, 100, key(), dtype).dtype == np.float32
    assert mr.normal(np, 100, key(), dtype).dtype == np.float32
    assert mr.uniform(GENERIC, 100, key(), dtype).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_ks(dtype):
    z = mr.normal(np, (1 << 18,), key(21, 2), dtype)
    assert z.dtype == dtype and np.isfinite(z).all()
    assert stats.kstest(z.astype(np.float64), "norm").pvalue > 1e-4
    assert np.array_equal(mr.normal(GENERIC, (1 << 10,), key(21, 2), dtype), z[:1 << 10])


def test_consecutive_streams_are_not_shifted_copies():
    n = 1 << 18
    gen = mr.Generator(5)
    a = mr.keep_mask(np, (n,), 0.5, gen).astype(np.float64)
    b = mr.keep_mask(np, (n,), 0.5, gen).astype(np.float64)
    for shift in range(-16, 17):
        if shift >= 0:
            r = np.corrcoef(a[shift:], b[:n - shift])[0, 1]
        else:
            r = np.corrcoef(a[:shift], b[-shift:])[0, 1]
        assert abs(r) < 5 / math.sqrt(n), shift


def test_hash_kernel_built_lazily_and_cached():
    assert mr.hash_kernel(np) is None

    class FakeCupy:
        built = []

        def ElementwiseKernel(self, in_params, out_params, source, name, preamble=""):
            self.built.append((in_params, out_params, source, name, preamble))
            return object()

    fake = FakeCupy()
    kernel = mr.hash_kernel(fake)
    assert mr.hash_kernel(fake) is kernel and len(FakeCupy.built) == 1
    in_params, out_params, source, _, preamble = FakeCupy.built[0]
    assert "uint64 ka" in in_params and out_params == "uint32 h"
    assert source == mr.HASH_KERNEL_SOURCE and preamble == mr.HASH_KERNEL_PREAMBLE


def test_bad_key_type():
    with pytest.raises(TypeError):
        mr.random_bits(np, 4, 12345)
