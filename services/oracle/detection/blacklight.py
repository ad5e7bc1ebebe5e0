"""Blacklight (Li et al., "Blacklight: Scalable Defense for Neural Networks against Query-Based Black-Box Attacks",
USENIX Security 2022): a probabilistic fingerprint of each query, and when two fingerprints match.

A query's pixels (0..255, a per-pixel salt added modulo 255 as the released code does) are rounded to multiples
of `quantization`; a window of `window` values slides by `stride` over the flattened input (in the oracle's
(C, H, W) order; the reference flattens (H, W, C)); each window is hashed; the `hashes` (S) largest distinct
hashes are the fingerprint. Two queries match when their fingerprints share at least `threshold` (T) hashes.
Query-based attacks (HopSkipJump, Boundary, Sign-OPT, NES...) send many near-copies of a few images, whose
quantized windows are nearly all equal; natural images rarely share half their top hashes. The state
(`blacklight_store.py`) is shared by all clients, so an attack split over keys matches too.

Hashing: the paper hashes each window with SHA-256. What matters for the fingerprint is that equal windows get
equal hashes, different ones (practically) never do, and the "largest S" is a pseudo-random choice of windows. A
polynomial hash of the window's levels modulo 2**64 (vectorised over the batch and every window position with
numpy, from hashes of blocks of 1, 2, 4... levels) followed by the splitmix64 finaliser (a bijection) gives all
three: the whole fingerprint costs ~25-30 µs per MNIST query, where hashlib's SHA-256 on each of its 765 windows
costs ~780 µs (README), more than the model's forward. Two different windows collide only where the polynomial of
their difference vanishes modulo 2**64 at the multiplier: never among the 20,000 random windows of the tests. The
hash starts from the salt's seed, so that the seed also decides which windows are a query's largest S (the
reference's SHA-256 is unkeyed). The hashes are 8 bytes, stored whole.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from bbrange.oracle.detection.config import BlacklightConfig

_BASE = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so multiplying by it loses no bit
_START = np.uint64(0xCBF29CE484222325)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)  # splitmix64's finaliser
_CHUNK = 256  # inputs fingerprinted at once: bounds the (chunk × windows) uint64 arrays (~1.5 MB for MNIST)


@lru_cache(maxsize=16)
def _salt(size: int, seed: int) -> np.ndarray:
    """The reference code's salt: uniform in [0, 255) per pixel (of the flattened input), from a seeded generator."""
    salt: np.ndarray = np.random.RandomState(seed).rand(size) * 255.0
    return salt


def quantize(x: np.ndarray, config: BlacklightConfig) -> np.ndarray:
    """(N, ...) inputs in [0, 1] as (N, D) levels: round(((255·x + salt) mod 255) / quantization)."""
    v = np.clip(np.asarray(x, np.float64).reshape(len(x), -1), 0.0, 1.0) * 255.0
    if config.salt_seed is not None:
        v += _salt(v.shape[1], config.salt_seed)
        # v < 510: mod 255 is one subtraction where v >= 255, exact as np.mod (Sterbenz) and several times faster
        np.subtract(v, 255.0, out=v, where=v >= 255.0)
    levels: np.ndarray = np.rint(v / config.quantization).astype(np.uint8)
    return levels


def _mix(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint64(30)
    h *= _MIX1
    h ^= h >> np.uint64(27)
    h *= _MIX2
    h ^= h >> np.uint64(31)
    return h


def window_hashes(levels: np.ndarray, config: BlacklightConfig) -> np.ndarray:
    """(N, W) hashes of every window of every row (W = the number of window positions).

    The polynomial hash of a window is Horner's rule over its levels, started from the seed: h = seed·B^w +
    Σ_j level_j·B^(w-1-j) modulo 2**64. It is linear, so the hash of a block of 2L levels is the hash of its first
    half times B^L plus that of its second: every position's hash of 1, 2, 4, ... levels in one pass each, then the
    window's length assembled from its binary digits (~log2(w) + popcount(w) passes over the batch instead of w)."""
    if levels.shape[1] < config.window:
        raise ValueError(f"inputs of {levels.shape[1]} values are shorter than the window ({config.window})")
    w = config.window
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64 is the point
        blocks = {1: levels.astype(np.uint64)}  # blocks[L][:, i]: the hash (from 0) of levels i .. i+L-1
        size = 1
        while 2 * size <= w:
            h = blocks[size]
            blocks[2 * size] = h[:, : h.shape[1] - size] * _power(size) + h[:, size:]
            size *= 2
        positions = levels.shape[1] - w + 1
        acc = np.full((len(levels), positions), _START ^ np.uint64(config.salt_seed or 0), np.uint64)
        offset = 0
        for length in sorted((b for b in blocks if w & b), reverse=True):  # the window's binary digits
            acc *= _power(length)
            acc += blocks[length][:, offset : offset + positions]
            offset += length
        return _mix(acc[:, :: config.stride].copy())


@lru_cache(maxsize=64)
def _power(n: int) -> np.uint64:
    """B**n modulo 2**64."""
    return np.uint64(pow(int(_BASE), n, 2**64))


def top_distinct(h: np.ndarray, s: int) -> np.ndarray:
    """The s largest distinct values of each row, largest first; rows with fewer are padded with 0 (a hash
    value of 0 is taken as absent: probability 2**-64). The largest s + 8 of each row are found by partition and
    only they sorted; a row with repeats among them is done in full."""
    n, m = h.shape
    extra = s + 8
    if m <= extra:
        return _top_distinct_sorted(h, s)
    top = np.partition(h, m - extra, axis=1)[:, m - extra :]
    top = np.sort(top, axis=1)[:, ::-1]
    repeated = (top[:, 1:] == top[:, :-1]).any(axis=1)
    out = np.ascontiguousarray(top[:, :s])
    if repeated.any():
        out[repeated] = _top_distinct_sorted(h[repeated], s)
    return out


def _top_distinct_sorted(h: np.ndarray, s: int) -> np.ndarray:
    h = np.sort(h, axis=1)[:, ::-1]
    repeated = np.zeros(h.shape, bool)
    repeated[:, 1:] = h[:, 1:] == h[:, :-1]
    if repeated.any():
        h[repeated] = 0  # a row's repeats become padding, sorted to its end
        h = np.sort(h, axis=1)[:, ::-1]
    out = np.zeros((len(h), s), np.uint64)
    out[:, : min(s, h.shape[1])] = h[:, :s]
    return out


def fingerprints(x: np.ndarray, config: BlacklightConfig) -> np.ndarray:
    """(N, S) uint64 fingerprints of a batch of inputs in [0, 1] (any shape per input, flattened C-order)."""
    out = np.zeros((len(x), config.hashes), np.uint64)
    for i in range(0, len(x), _CHUNK):
        chunk = x[i : i + _CHUNK]
        top = top_distinct(window_hashes(quantize(chunk, config), config), config.hashes)
        out[i : i + len(chunk), : top.shape[1]] = top
    return out


def input_ids(x: np.ndarray) -> np.ndarray:
    """A uint64 per input naming its exact content (BLAKE2b of its float32 values): an exact re-send of a query
    (an idempotent retry, the same image asked again, one image several clients ask) has the same id."""
    flat = np.ascontiguousarray(np.asarray(x, np.float32).reshape(len(x), -1))
    return np.frombuffer(b"".join(hashlib.blake2b(row.tobytes(), digest_size=8).digest() for row in flat), "<u8")


def shared(a: np.ndarray, b: np.ndarray) -> int:
    """Hashes two fingerprints have in common (padding excluded)."""
    return int(np.intersect1d(a[a != 0], b[b != 0], assume_unique=True).size)
