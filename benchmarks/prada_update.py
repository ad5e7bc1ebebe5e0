"""PRADA's update, batched ÷ one input at a time: updates per second on MNIST at a realistic state size.

    .venv/bin/python benchmarks/prada_update.py                  # batches of 1, 10, 100; natural and attack-like
    .venv/bin/python benchmarks/prada_update.py --http 5         # also the oracle's throughput, detector on ÷ off

The state is a client's after 3,000 natural MNIST test images (every G_c ring full at the default 64 points, D's
window full); each timed update starts from a copy of it (copies made outside the timer). "sequential" is the
reference kept in tests/oracle/test_detection_prada_batch.py (the update as it was: the distances to the stored
points at once, then one input after the other in Python, W through scipy.stats.shapiro); "batched" is
`prada.update`. Both see the same
inputs: natural test images not yet seen, or a Jacobian-like stream (each input an earlier one plus 0.1·sgn(noise)),
in which most inputs join their G_c. With `--http N`, `detection_http.throughput_ratio(N)` starts a real oracle
(off, on, off, on; 4 clients, batches of 100) and prints labels/s on, off and on ÷ off.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "oracle"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import typer  # noqa: E402
from test_detection_prada_batch import reference_update  # noqa: E402

from bbrange.oracle.detection import prada  # noqa: E402
from bbrange.oracle.detection.config import DetectorConfig  # noqa: E402
from bbrange.shared.datasets import load_dataset  # noqa: E402

Update = Callable[[prada.PradaState, np.ndarray, np.ndarray, DetectorConfig], None]


def warm_state(x: np.ndarray, y: np.ndarray, config: DetectorConfig) -> prada.PradaState:
    state = prada.PradaState(prada.stored_size(tuple(x.shape[1:]), config))
    for i in range(0, len(x), 100):
        prada.update(state, prada.project(x[i : i + 100], config), y[i : i + 100], config)
    return state


def attack_like(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parents = rng.integers(0, len(x), n)
    child = np.clip(x[parents] + 0.1 * np.sign(rng.standard_normal(x[parents].shape)), 0, 1).astype(np.float32)
    return child, y[parents]


def per_second(update: Update, state: prada.PradaState, z: np.ndarray, labels: np.ndarray, batch: int,
               config: DetectorConfig, rounds: int) -> float:
    """Inputs per CPU second: `rounds` rounds of 200 inputs (batches of `batch` from z, each on a fresh copy of
    `state`); the best round counts. CPU time and the best round, because the machine is shared: wall time
    measures the neighbours as much as the detector."""
    best, i = np.inf, 0
    for _ in range(rounds):
        copies = [copy.deepcopy(state) for _ in range(max(1, 200 // batch))]
        started = time.process_time()
        for s in copies:
            j = i % (len(z) - batch + 1)
            update(s, z[j : j + batch], labels[j : j + batch], config)
            i += batch
        best = min(best, (time.process_time() - started) / (len(copies) * batch))
    return 1.0 / best


def main(rounds: int = typer.Option(7, help="Timed rounds of 200 inputs per cell (the best counts)"),
         http: float = typer.Option(0.0, help="Seconds per cell of the HTTP detector on ÷ off run (0: skip it)"),
         data_dir: str = typer.Option(os.environ.get("BBRANGE_DATA_DIR", ""), help="Where mnist lies")) -> None:
    if data_dir:
        os.environ["BBRANGE_DATA_DIR"] = data_dir
    config = DetectorConfig()
    test = load_dataset("mnist", "test", download=False)
    state = warm_state(test.x[:3000], test.y[:3000], config)
    print(f"settings: DetectorConfig() defaults (max_per_class={config.max_per_class}, pool={config.pool}, "
          f"window={config.window}, check_every={config.check_every}); state: {len(state.classes)} classes, "
          f"{sum(len(g.levels) for g in state.classes.values())} stored points of {state.dim} dims, "
          f"D {len(state.distances)}; best of {rounds} rounds of 200 inputs, CPU time; {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f} (a shared machine: the figures are noisy)")
    streams = {"natural": (test.x[3000:5000], test.y[3000:5000]), "attack-like": attack_like(test.x[:3000], test.y[:3000], 2000)}
    print(f"{'stream':<12} {'batch':>5} {'sequential/s':>13} {'batched/s':>11} {'speed-up':>9}   (inputs per CPU second)")
    for name, (x, y) in streams.items():
        z = prada.project(x, config)
        for batch in (1, 10, 100):
            old = per_second(reference_update, state, z, y, batch, config, rounds)
            new = per_second(prada.update, state, z, y, batch, config, rounds)
            print(f"{name:<12} {batch:>5} {old:>13,.0f} {new:>11,.0f} {new / old:>8.2f}×")
    if http > 0:
        from detection_http import throughput_ratio

        on, off, ratio = throughput_ratio(http)
        print(f"HTTP (4 clients, batches of 100, {http:g} s per cell): detector on {on:,.0f} labels/s, "
              f"off {off:,.0f}, on ÷ off {ratio:.3f}")


if __name__ == "__main__":
    typer.run(main)
