"""Blacklight's fingerprints and what matches, in-process (numpy only; the Redis side is tests/oracle/
test_detection_blacklight.py): near-copies of an image match it, different test images rarely match each other."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from bbrange.oracle.detection import blacklight
from bbrange.oracle.detection.config import BlacklightConfig, DetectionSettings

CONFIG = BlacklightConfig()


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return np.asarray(mnist_test.x[:300], np.float32)


def shared_with(x: np.ndarray, y: np.ndarray) -> list[int]:
    fx, fy = blacklight.fingerprints(x, CONFIG), blacklight.fingerprints(y, CONFIG)
    return [blacklight.shared(a, b) for a, b in zip(fx, fy, strict=True)]


def test_a_slightly_perturbed_image_matches_its_original(images):
    rng = np.random.default_rng(0)
    x = images[:50]
    # Noise of the size of a decision-based attack's probes around an image (a pixel moves by 1 or 2 of 255).
    noisy = np.clip(x + rng.uniform(-1 / 255, 1 / 255, x.shape), 0, 1).astype(np.float32)
    assert min(shared_with(x, noisy)) >= CONFIG.threshold
    noisier = np.clip(x + rng.uniform(-2 / 255, 2 / 255, x.shape), 0, 1).astype(np.float32)
    assert np.mean(np.array(shared_with(x, noisier)) >= CONFIG.threshold) >= 0.9
    assert shared_with(x[:1], x[:1]) == [CONFIG.hashes]


def test_different_test_images_rarely_match(images):
    f = blacklight.fingerprints(images, CONFIG)
    pairs = np.array([[blacklight.shared(f[i], f[j]) if i != j else 0 for j in range(len(f))] for i in range(len(f))])
    # Digits share much of their black background (13 of 50 hashes at the median here), far from T = 25; MNIST's
    # ones are thin strokes on that background, and a few pairs of them reach T.
    distinct = pairs[np.triu_indices(len(f), 1)]
    assert np.median(distinct) < 20
    assert (distinct >= CONFIG.threshold).mean() < 0.002  # of 44,850 pairs
    assert (pairs.max(axis=1) >= CONFIG.threshold).mean() < 0.1  # images with any partner among the other 299


def test_fingerprints_do_not_depend_on_the_batch_or_the_process(images):
    one_by_one = np.concatenate([blacklight.fingerprints(images[i : i + 1], CONFIG) for i in range(20)])
    assert np.array_equal(blacklight.fingerprints(images[:20], CONFIG), one_by_one)
    # The salt is drawn from its seed, so every oracle process computes the same fingerprints.
    digest = hashlib.sha256(blacklight.fingerprints(images[:3], CONFIG).tobytes()).hexdigest()
    blacklight._salt.cache_clear()
    assert hashlib.sha256(blacklight.fingerprints(images[:3], CONFIG).tobytes()).hexdigest() == digest
    unsalted = BlacklightConfig(salt_seed=None)
    assert not np.array_equal(blacklight.fingerprints(images[:3], unsalted), blacklight.fingerprints(images[:3], CONFIG))


def test_quantization_and_windows_follow_the_settings():
    x = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 1, 28, 28)
    levels = blacklight.quantize(x, BlacklightConfig(salt_seed=None))
    assert levels.min() == 0 and levels.max() == 5  # 255 / 50 rounds to 5: six levels
    h = blacklight.window_hashes(levels, BlacklightConfig(window=20, stride=4))
    assert h.shape == (1, (784 - 20) // 4 + 1)
    # Equal windows hash equal, different windows differently (no collision among 20,000 random windows).
    rng = np.random.default_rng(1)
    windows = rng.integers(0, 6, size=(20_000, 20), dtype=np.uint8)
    hashes = blacklight.window_hashes(windows, BlacklightConfig(window=20))[:, 0]
    assert len(np.unique(hashes)) == len(np.unique(windows, axis=0))


def test_an_input_with_few_distinct_windows_is_padded():
    flat = np.zeros((1, 1, 28, 28), np.float32)
    f = blacklight.fingerprints(flat, BlacklightConfig(salt_seed=None))  # one window value: one hash
    assert (f != 0).sum() == 1 and f.shape == (1, CONFIG.hashes)
    assert blacklight.shared(f[0], f[0]) == 1


def test_input_ids_name_exact_content(images):
    ids = blacklight.input_ids(np.concatenate([images[:3], images[:1]]))
    assert ids.dtype == np.uint64 and ids[0] == ids[3] and len(set(ids[:3].tolist())) == 3
    nudged = images[:1].copy()
    nudged.flat[0] += 1e-6
    assert blacklight.input_ids(nudged)[0] != ids[0]


def test_per_model_settings_merge_field_by_field():
    settings = DetectionSettings(default={"policy": "flag", "blacklight": {"threshold": 30, "salt_seed": 7}},
                                 models={"gtsrb": {"blacklight": {"window": 50}}, "other": {"delta": 0.8}})
    gtsrb = settings.for_model("gtsrb")
    assert (gtsrb.blacklight.window, gtsrb.blacklight.threshold, gtsrb.blacklight.salt_seed) == (50, 30, 7)
    assert gtsrb.policy == "flag" and settings.for_model("other").blacklight.threshold == 30
    assert settings.for_model("mnist").blacklight == BlacklightConfig(threshold=30, salt_seed=7)
    with pytest.raises(ValueError):
        BlacklightConfig(hashes=0)
