"""The honest baseline of every FGSM transfer figure: what random ±ε noise alone does to each oracle.

    .venv/bin/python benchmarks/noise_baseline.py --oracle mnist --oracle mnist-mlp

For each oracle: its accuracy on the 9,850 MNIST test images outside the largest S0 (the images the black-box
benchmarks evaluate on), and the share it misclassifies once each image is moved by random ±ε on every pixel
(the engine's `FGSM.noise`, the same baseline campaigns and `blackbox_mnist.py` measure), over three noise
draws. No substitute is involved: the baseline depends on the oracle, the images and ε only, so it stands beside
every transfer figure on those images whatever λ or seed trained the substitute.
"""

from __future__ import annotations

import numpy as np
import typer
from oracles import label_oracle  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import FGSM, QueryCounter, oracle_labels
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import resolve_device


def main(
    oracles: list[str] = typer.Option(["mnist", "mnist-mlp"], "--oracle", help="model card names in models/"),
    epsilons: list[float] = typer.Option([0.1, 0.2, 0.3], "--eps"),
    draws: int = typer.Option(3, help="noise draws (seeds 0..n-1)"),
    device: str = typer.Option("auto"),
) -> None:
    dev = resolve_device(device)
    data = load_dataset("mnist", "test")
    x, y = data.x[150:], data.y[150:]
    print(f"settings: {len(y)} MNIST test images (indices 150..), random ±ε on every pixel, clipped to [0, 1], "
          f"{draws} draws; device {dev}")
    print(f"{'oracle':16s}{'clean accuracy':>16s}" + "".join(f"{f'noise ε={e}':>16s}" for e in epsilons))
    for name in oracles:
        oracle, _ = label_oracle(name, dev)
        counter = QueryCounter(oracle)
        clean = float((oracle_labels(counter, x, "agreement") == y).mean())
        cells = []
        for eps in epsilons:
            rates = [float((oracle_labels(counter, FGSM(eps=eps).noise(x, x, np.random.default_rng(seed)),
                                          "baseline") != y).mean()) for seed in range(draws)]
            cells.append(f"{np.mean(rates):.2%} ± {np.std(rates):.2%}")
        print(f"{name:16s}{clean:>16.2%}" + "".join(f"{c:>16s}" for c in cells), flush=True)


if __name__ == "__main__":
    typer.run(main)
