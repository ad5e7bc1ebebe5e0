"""Benchmark 1: white-box JSMA on the MNIST LeNet oracle, as in the thesis's Section 6.1.

    .venv/bin/python benchmarks/jsma_whitebox.py --images 1000

Each of the first N test images is pushed towards each of its 9 other classes. θ = +1 with
Υ = 14.5% (thesis: 97.10% success, 4.02% mean distortion of successful samples, 4.44% over all),
then θ = −1 (thesis: 64.7% and 3.62%). A smaller run at Υ = 38.3% gives the hardness matrix for the
thesis's nine Υ values: JSMA is greedy and deterministic and Υ only caps the number of iterations,
so the run at the largest Υ contains every smaller-Υ run (success at Υ_k iff it succeeded within
floor(M·Υ_k/2) iterations, with the distortion it ended with).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import typer
from oracles import frozen, load_oracle_model  # noqa: I001 - benchmarks/ is the script's directory

from bbrange.attacker.engine import SearchDomain, adversarial_distance, distortion, hardness, jsma, pair_matrices
from bbrange.attacker.engine.jsma import max_iterations
from bbrange.shared.datasets import load_dataset
from bbrange.shared.devices import as_batch, resolve_device

THESIS = {1.0: (0.9710, 0.0402, 0.0444), -1.0: (0.647, 0.0362, None)}
HARDNESS_UPSILONS = (0.003, 0.013, 0.026, 0.051, 0.077, 0.102, 0.128, 0.255, 0.383)


def all_targets(y: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(image index, target) for every image and every class but its own."""
    idx = np.repeat(np.arange(len(y)), num_classes - 1)
    targets = np.array([t for label in y for t in range(num_classes) if t != label])
    return idx, targets


def run(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, theta: float, upsilon: float,
        device: torch.device, batch_size: int, search_domain: SearchDomain = "all") -> dict:
    idx, targets = all_targets(y, 10)
    xs = as_batch(x[idx], device)
    started = time.perf_counter()
    result = jsma(model, xs, torch.from_numpy(targets).to(device), theta=theta, max_distortion=upsilon,
                  batch_size=batch_size, search_domain=search_domain)
    wall = time.perf_counter() - started
    success = result.success.cpu().numpy()
    d = distortion(xs, result.x_adv)
    matrices = pair_matrices(y[idx], targets, success, d.l0, 10)
    return {
        "samples": len(idx), "success": float(success.mean()), "l0_successful": d.mean_l0(success),
        "l0_all": d.mean_l0(), "l2_successful": float(d.l2[success].mean()),
        "linf_successful": float(d.linf[success].mean()), "wall_s": wall, "samples_per_s": len(idx) / wall,
        "success_matrix": np.round(matrices.success_rate, 4).tolist(),
        "distortion_matrix": np.round(matrices.distortion_successful, 4).tolist(),
        "_iterations": result.iterations.cpu().numpy(), "_l0": d.l0, "_success": success, "_source": y[idx], "_targets": targets,
    }


def main(
    images: int = typer.Option(1000, help="N test images (the first N), 9 targets each"),
    upsilon: float = typer.Option(0.145, help="maximum distortion Υ (fraction of pixels)"),
    decreasing_images: int = typer.Option(1000, help="N for the θ = −1 run (0 to skip)"),
    hardness_images: int = typer.Option(100, help="N for the hardness / adversarial distance run (0 to skip)"),
    oracle: str = typer.Option("mnist", help="model card name in models/"),
    batch_size: int = typer.Option(1000, help="JSMA samples per batch"),
    search_domain: str = typer.Option("all", help="Γ at the start: all (the thesis's Algorithm 2) or movable "
                                                  "(cleverhans); the other one is also run on θ = −1 for comparison"),
    device: str = typer.Option("auto"),
    json_out: Path = typer.Option(None, help="write the figures as JSON here"),
) -> None:
    dev = resolve_device(device)
    model, card = load_oracle_model(oracle, dev)
    model = frozen(model)
    test = load_dataset("mnist", "test")
    print(f"oracle {oracle}: {card['architecture']} ({card['architecture_layers']}), test accuracy "
          f"{card['test_accuracy']:.2%}; device {dev}, torch threads {torch.get_num_threads()}")
    print(f"settings: targeted JSMA, pixel pairs (Algorithm 3), forward derivative on logits, Υ = {upsilon:.1%} "
          f"(max_iter = {max_iterations(784, upsilon)} pairs), first N test images x 9 targets, batch {batch_size}, "
          f"search domain Γ starts with {search_domain} features")
    if search_domain not in ("all", "movable"):
        raise typer.BadParameter("all or movable", param_hint="--search-domain")
    figures: dict = {"settings": {"oracle": oracle, "upsilon": upsilon, "batch_size": batch_size,
                                  "search_domain": search_domain}}

    for theta, n in ((1.0, images), (-1.0, decreasing_images)):
        if n <= 0:
            continue
        r = run(model, test.x[:n], test.y[:n], theta, upsilon, dev, batch_size, search_domain)  # type: ignore[arg-type]
        paper = THESIS[theta]
        print(f"\nθ = {theta:+.0f}, N = {n} images, {r['samples']} samples, {r['wall_s']:.0f} s "
              f"({r['samples_per_s']:.1f} samples/s)")
        print(f"  {'':34s}{'thesis':>10s}{'ours':>10s}")
        print(f"  {'success rate':34s}{paper[0]:>10.2%}{r['success']:>10.2%}")
        print(f"  {'mean L0 distortion, successful':34s}{paper[1]:>10.2%}{r['l0_successful']:>10.2%}")
        print(f"  {'mean L0 distortion, all':34s}{(f'{paper[2]:.2%}' if paper[2] else '-'):>10s}{r['l0_all']:>10.2%}")
        print(f"  mean L2 {r['l2_successful']:.3f}, mean L∞ {r['linf_successful']:.3f} (successful samples)")
        print("  success rate per source (rows) and target (columns):")
        for row in r["success_matrix"]:
            print("   " + " ".join("  -  " if np.isnan(v) else f"{v:5.2f}" for v in row))
        figures[f"theta{theta:+.0f}"] = {k: v for k, v in r.items() if not k.startswith("_")} | {"images": n}
        if theta < 0:
            other = "movable" if search_domain == "all" else "all"
            o = run(model, test.x[:n], test.y[:n], theta, upsilon, dev, batch_size, other)  # type: ignore[arg-type]
            print(f"  with Γ starting from the {other} features instead: success {o['success']:.2%}, L0 "
                  f"{o['l0_successful']:.2%} (successful), {o['l0_all']:.2%} (all); most MNIST pixels are 0 and "
                  f"cannot decrease, so the choice of Γ decides how many iterations θ = −1 wastes")
            figures[f"theta{theta:+.0f}_{other}"] = {k: v for k, v in o.items() if not k.startswith("_")} | {"images": n}

    if hardness_images > 0:
        r = run(model, test.x[:hardness_images], test.y[:hardness_images], 1.0, max(HARDNESS_UPSILONS), dev, batch_size)
        its, ok = r["_iterations"], r["_success"]
        taus, epss = [], []
        for u in HARDNESS_UPSILONS:
            within = ok & (its <= max_iterations(784, u))
            m = pair_matrices(r["_source"], r["_targets"], within, r["_l0"], 10)
            taus.append(m.success_rate)
            epss.append(m.distortion_successful)
        h = hardness(np.stack(taus), np.stack(epss))
        idx, targets = all_targets(test.y[:hardness_images], 10)
        a = adversarial_distance(model, as_batch(test.x[idx], dev), torch.from_numpy(targets).to(dev),
                                 pairs=True)
        a_matrix = np.full((10, 10), np.nan)
        for s in range(10):
            for t in range(10):
                sel = (r["_source"] == s) & (targets == t)
                if sel.any():
                    a_matrix[s, t] = a[sel].mean()
        off = ~np.eye(10, dtype=bool)
        both = off & np.isfinite(a_matrix)
        corr = float(np.corrcoef(h[both], a_matrix[both])[0, 1])
        print(f"\nhardness H(s,t) over Υ ∈ {{{', '.join(f'{u:.1%}' for u in HARDNESS_UPSILONS)}}}, N = {hardness_images}"
              f" images (one run at Υ = 38.3%, θ = +1): mean {h[off].mean():.4f}, max {h[off].max():.4f}")
        print(f"adversarial distance A(X,t) (pair version), mean {np.nanmean(a):.4f}; correlation of its "
              f"class-pair average with H: {corr:.2f} (the thesis's Figure 6.5 shows they track each other)")
        figures["hardness"] = {"images": hardness_images, "upsilons": HARDNESS_UPSILONS,
                               "matrix": np.round(h, 5).tolist(), "adversarial_distance": np.round(a_matrix, 4).tolist(),
                               "correlation": corr}
    if json_out:
        json_out.write_text(json.dumps(figures, indent=1, default=float))


if __name__ == "__main__":
    typer.run(main)
