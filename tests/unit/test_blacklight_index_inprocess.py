"""Blacklight's in-process index (numpy only) against a brute-force reference: every stored query compared with every
new one, across merges of its sorted runs, forgetting by time and by cap, and renumbering."""

from __future__ import annotations

import numpy as np

from bbrange.oracle.detection.blacklight_index import FingerprintIndex

S, T = 50, 25


def fingerprints(rng: np.random.Generator, n: int, pool: np.ndarray) -> np.ndarray:
    """n fingerprints, each S distinct hashes drawn from a small pool (so that some pairs share >= T of them)."""
    return np.stack([rng.choice(pool, S, replace=False) for _ in range(n)]).astype(np.uint64)


def brute_force(stored: list[tuple[np.ndarray, str, int]], fp: np.ndarray, inp: int, client: str,
                me: str) -> tuple[int, set[int]]:
    """The most hashes shared with one counted stored query, and every counted stored query matched (>= T)."""
    best, hits = 0, set()
    for qid, (f, owner, i) in enumerate(stored):
        if i == inp or (owner.rsplit(" ", 1)[0] == client and owner != me):
            continue
        n = len(np.intersect1d(f, fp))
        best = max(best, n)
        if n >= T:
            hits.add(qid)
    return best, hits


def test_lookups_equal_a_brute_force_comparison_across_merges():
    rng = np.random.default_rng(0)
    pool = rng.integers(1, 2**63, size=80, dtype=np.uint64)
    index = FingerprintIndex(keep=10_000)  # more than any hash's queries: nothing capped
    stored: list[tuple[np.ndarray, str, int]] = []
    owners = ["c_a 0", "c_b 0", "c_a 1"]
    for step in range(12):
        n = int(rng.integers(1, 30))
        fps = fingerprints(rng, n, pool)
        inputs = rng.integers(1, 2**63, size=n, dtype=np.uint64)
        who = [owners[int(k)] for k in rng.integers(0, 3, size=n)]
        index.add(np.full(n, step, np.int64), who, inputs, fps)
        stored += list(zip(fps, who, inputs.tolist(), strict=True))
        probe = fingerprints(rng, 8, pool)
        probe_inputs = rng.integers(1, 2**63, size=8, dtype=np.uint64)
        probe_inputs[0] = inputs[0]  # an exact re-send of a stored input
        found = index.lookup(probe, probe_inputs, T, "c_a", "c_a 1")
        for row in range(8):
            best, hits = brute_force(stored, probe[row], int(probe_inputs[row]), "c_a", "c_a 1")
            assert found.shared[row] == best, (step, row)
            qid = int(found.matched_qid[row])
            assert (qid in hits) if hits else qid == -1, (step, row)
            if any(stored[h][1].startswith("c_b") for h in hits):  # another client's query is preferred
                assert stored[qid][1].startswith("c_b")
    assert len(index) == len(stored) and len(index._runs) < 8  # merged: a few runs, not one per add


def test_forgotten_queries_never_match_and_the_arrays_are_renumbered():
    rng = np.random.default_rng(1)
    pool = rng.integers(1, 2**63, size=60, dtype=np.uint64)
    index = FingerprintIndex(keep=16)
    fps = fingerprints(rng, 3000, pool)
    inputs = np.arange(1, 3001, dtype=np.uint64)
    index.add(np.arange(3000, dtype=np.int64), ["c 0"] * 3000, inputs, fps)
    index.forget_before(cutoff_ms=2500, cap=10_000)
    assert len(index) == 500 and index._base == 2500  # mostly dead: the arrays and runs were renumbered
    found = index.lookup(fps[:5], np.zeros(5, np.uint64), T, "d", "d 0")
    assert (found.matched_qid >= 2500).all()  # only the live ones (pool of 60: everything matches something)
    assert not index.resent(inputs[:5]).any() and index.resent(inputs[-5:]).all()
    index.forget_before(cutoff_ms=0, cap=100)  # the cap: the latest 100
    assert len(index) == 100
    assert index.owner_of(np.array([2950])) == ["c 0"]
    found = index.lookup(fps[:5], np.zeros(5, np.uint64), T, "d", "d 0")
    assert (found.matched_qid >= 2900).all()


def test_within_a_batch_each_row_matches_earlier_stored_rows_only():
    rng = np.random.default_rng(2)
    pool = rng.integers(1, 2**63, size=70, dtype=np.uint64)
    index = FingerprintIndex(keep=64)
    fps = fingerprints(rng, 40, pool)
    inputs = rng.integers(1, 2**63, size=40, dtype=np.uint64)
    inputs[7] = inputs[3]  # the same input twice: not a match of each other
    stored = np.ones(40, bool)
    stored[[5, 7]] = False  # re-sends are not stored: later rows do not match them
    shared, best = index.within_batch(fps, inputs, stored)
    for row in range(40):
        earlier = [j for j in range(row) if stored[j] and inputs[j] != inputs[row]]
        counts = [len(np.intersect1d(fps[row], fps[j])) for j in earlier]
        assert shared[row] == max(counts, default=0), row
        if counts:
            assert counts[earlier.index(int(best[row]))] == shared[row]
        else:
            assert best[row] == -1


def test_a_hash_every_query_has_counts_only_its_keep_latest_queries_over_all_runs():
    index = FingerprintIndex(keep=4)
    common = np.full((1000, 2), 7, np.uint64)
    common[:, 1] = np.arange(1, 1001)  # and a hash of its own
    for i in range(0, 1000, 100):  # ten adds: several runs
        index.add(np.zeros(100, np.int64), ["c 0"] * 100, np.arange(i + 1, i + 101, dtype=np.uint64), common[i : i + 100])
    probe = np.array([[7, 5]], np.uint64)  # shares the common hash with all, its own with query 4 only
    found = index.lookup(probe, np.zeros(1, np.uint64), 2, "d", "d 0")
    assert len(index._runs) > 1
    assert found.shared[0] == 1 and found.matched_qid[0] == -1  # query 4's common hash is not among the latest 4
    found = index.lookup(probe, np.zeros(1, np.uint64), 1, "d", "d 0")
    assert found.matched_qid[0] == 999
