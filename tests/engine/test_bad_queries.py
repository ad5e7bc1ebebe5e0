"""The bad-query figure from an account flag: each image's own count at the flag from the order of the search, and
the distortion it had reached after 100 / 500 / 1,000 queries answered under the flag (in-process, no oracle)."""

from __future__ import annotations

import numpy as np

from bbrange.attacker.engine.query_attacks.measures import QueryMeasures, queries_at_flag


def measures(queries: np.ndarray, at_checkpoints: np.ndarray, chunk: int) -> QueryMeasures:
    return QueryMeasures("l2", [100, 200, 500, 1_000, 2_000], [], [], [], [], [], [], queries, at_checkpoints,
                         ceiling=28.0, chunk=chunk)


def test_chunks_run_one_after_another_and_their_images_side_by_side():
    queries = np.array([1_000, 1_000, 2_000, 2_000])
    # Chunks of two: the first chunk's 2,000 queries come first, all of them before a flag at 2,000.
    assert queries_at_flag(queries, 2, 2_000).tolist() == [1_000, 1_000, 0, 0]
    # A flag a quarter into the second chunk: each of its images a quarter through its own queries.
    assert queries_at_flag(queries, 2, 3_000).tolist() == [1_000, 1_000, 500, 500]
    assert queries_at_flag(queries, 4, 0).tolist() == [0, 0, 0, 0]
    assert queries_at_flag(queries, 4, 10_000).tolist() == queries.tolist()  # flagged after the search


def test_the_distortion_after_bad_queries_is_read_at_the_last_checkpoint_within_them():
    # Two images side by side, 2,000 queries each; distortion at checkpoints 100, 200, 500, 1K, 2K.
    at = np.array([[28.0, 9.0, 5.0, 3.0, 2.0],
                   [28.0, 8.0, 4.0, 2.5, 1.5]])
    m = measures(np.array([2_000, 2_000]), at, chunk=2)
    figure = m.after_bad_queries(400)  # each image flagged at its 200th query
    assert figure["median_queries_per_image_at_flag"] == 200 and figure["images_with_bad_queries"] == 2
    points = {p["bad_queries"]: p["median"] for p in figure["points"]}
    # 200 + 100 = 300: checkpoint 200; 200 + 500 = 700: checkpoint 500; 200 + 1,000 = 1,200: checkpoint 1K.
    assert points == {100: 8.5, 500: 4.5, 1_000: 2.75}
    flagged_late = m.after_bad_queries(4_000)  # after the search: no bad queries, the final distortions
    assert flagged_late["images_with_bad_queries"] == 0
    assert {p["median"] for p in flagged_late["points"]} == {1.75}
    early = measures(np.array([2_000, 2_000]), at, chunk=2).after_bad_queries(0)
    assert [p["median"] for p in early["points"]] == [28.0, 4.5, 2.75]  # 100 bad queries: the 100th checkpoint
