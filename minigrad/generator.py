"""Generators and stream keys: the state behind every random draw in minigrad.

A :class:`Generator` is a 64-bit seed plus a call counter. Each draw consumes one counter
value and gets a :class:`StreamKey`: (seed, counter) mixed by SplitMix64 into two 32-bit words.
The bits of the draw are then a pure function of (key, element index), computed by
``minigrad.random``; so a key of a few bytes regenerates a whole draw, and the same key gives
the same bits on NumPy and CuPy. Nothing here touches NumPy's or CuPy's global RNG.
"""

import operator
import threading
from typing import NamedTuple

__all__ = ["Generator", "StreamKey", "default_generator", "manual_seed"]

MASK32, MASK64 = (1 << 32) - 1, (1 << 64) - 1
GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def splitmix64(z):
    """Return the SplitMix64 output for state ``z`` (Python ints, wrapped to 64 bits)."""
    z = (z + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
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

        (k0, k1) is output ``counter`` of a SplitMix64 sequence started from the mixed seed,
        so nearby seeds and consecutive counters give unrelated keys.
        """
        seed = operator.index(seed) & MASK64
        counter = operator.index(counter) & MASK64
        z = splitmix64((splitmix64(seed) + counter * GOLDEN) & MASK64)
        return cls(seed, counter, z & MASK32, z >> 32)


class Generator:
    """A seed plus a call counter; each draw consumes one counter value (one stream).

    Draws share no state with NumPy or CuPy, so results are identical on every backend and
    reproducible from ``get_state()``.
    """

    def __init__(self, seed=0):
        self._lock = threading.Lock()
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Reset to ``seed`` (any int, taken modulo 2**64) with the counter at zero."""
        with self._lock:
            self._seed, self._counter = operator.index(seed) & MASK64, 0
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
        """Consume one counter value and return its key; the key alone regenerates the draw."""
        with self._lock:
            counter, self._counter = self._counter, (self._counter + 1) & MASK64
            return StreamKey.from_seed(self._seed, counter)

    def get_state(self):
        """Return the state as a plain dict of ints, suitable for checkpoints."""
        with self._lock:
            return {"seed": self._seed, "counter": self._counter}

    def set_state(self, state):
        """Restore a state produced by :meth:`get_state`."""
        seed = operator.index(state["seed"]) & MASK64
        counter = operator.index(state["counter"]) & MASK64
        with self._lock:
            self._seed, self._counter = seed, counter


_default = Generator(0)


def default_generator():
    """Return the module-level generator used when no key or generator is given."""
    return _default


def manual_seed(seed):
    """Reseed the default generator (counter back to zero) and return it."""
    return _default.manual_seed(seed)


def as_key(key):
    """Turn a StreamKey, a Generator, or None (default generator) into a StreamKey."""
    if key is None:
        key = _default
    if isinstance(key, Generator):
        return key.next_key()
    if isinstance(key, StreamKey):
        return key
    raise TypeError(f"expected StreamKey, Generator or None, got {type(key).__name__}")
