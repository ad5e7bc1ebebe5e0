"""The blue side of the range, measured: PRADA (the oracle's extraction detector) on attack and benign streams.

    .venv/bin/python benchmarks/detection.py                      # everything, side by side (~10 min on 2 cores)
    .venv/bin/python benchmarks/detection.py --skip-http          # without the HTTP throughput comparison

1. Attack streams. Our campaigns run in-process (`run_blackbox_attack`, the campaign service's pipeline)
   against the `mnist` oracle through a recorder that keeps every query in order with the oracle's label;
   each stream is then fed to the detector exactly as the oracle does (batches as sent, `DetectorConfig()`
   defaults) and the queries until the flag are counted: JBDA with λ=−0.1 and +0.1, periodic step +
   reservoir sampling, the FGSM and JSMA evaluation phases on their own (a fresh key that labels clean
   images, then their adversarial examples), and the attacker's answer: JBDA camouflaged among natural
   images (`CamouflagedCounter`), with its cost in queries and transfer.
2. Benign streams: at least 100 clients sending MNIST images (train and test) in random order, in class
   order, with repeats, lightly augmented (shift, brightness, noise), and several users sharing one key;
   the false positive rate is the share flagged.
3. Throughput: a real oracle process over HTTP (binary .npy, 4 clients, batches of 100), detector on ÷ off.

PRADA's paper (Juuti et al., EuroS&P 2019) reports detecting every extraction attack it tried, Papernot's
JBDA among them, with no false positives.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import typer  # noqa: E402
from detection_http import throughput_ratio  # noqa: E402
from detection_streams import benign_streams, feed  # noqa: E402
from oracles import label_oracle  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bbrange.attacker.engine import (  # noqa: E402
    FGSM,
    JSMA,
    BlackBoxAttack,
    BlackBoxResult,
    CallableOracle,
    CamouflagedCounter,
    QueryCounter,
    SubstituteConfig,
    choose_targets,
    run_blackbox_attack,
)
from bbrange.oracle.detection.config import DetectorConfig  # noqa: E402
from bbrange.shared.datasets import Dataset, load_dataset  # noqa: E402
from bbrange.shared.devices import as_batch  # noqa: E402

console = Console(width=170)
app = typer.Typer(add_completion=False)


@dataclass
class Recorder:
    """The oracle's view of one client: every batch in order, with its phase and labels."""

    labels_of: Callable[[np.ndarray], np.ndarray]
    phase: str = ""
    batches: list[tuple[str, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        labels = self.labels_of(x)
        for i in range(0, len(x), 1000):  # the campaign service's HTTP client sends batches of at most 1,000
            self.batches.append((self.phase, x[i : i + 1000], labels[i : i + 1000]))
        return labels

    def before(self, phase: str, n: int) -> None:
        self.phase = phase


@dataclass
class AttackRow:
    name: str
    queries: int
    labelling: int
    flagged_at: int | None
    flagged_labelling: int | None
    flagged_phase: str | None
    min_w: float | None
    transfer: float | None
    noise: float | None  # random noise of the same size on the same images, same oracle
    note: str = ""


def _flag_position(batches: list[tuple[str, np.ndarray, np.ndarray]], config: DetectorConfig,
                   ) -> tuple[int | None, int | None, str | None, float | None]:
    """Feed a recorded stream to PRADA: the query count at the flag, the labelling queries then, the phase, min W."""
    # The noise baseline is our measurement, not the attacker's: its queries are no part of the stream PRADA sees.
    result = feed([(x, y) for phase, x, y in batches if phase != "baseline"], config)
    if result.alarm_at is None:
        return None, None, None, result.min_w
    seen = labelling = 0
    for phase, x, _ in (b for b in batches if b[0] != "baseline"):
        if seen + len(x) >= result.alarm_at:
            if phase == "labelling":
                labelling += result.alarm_at - seen
            return result.alarm_at, labelling, phase, result.min_w
        seen += len(x)
        labelling += len(x) if phase == "labelling" else 0
    return result.alarm_at, labelling, None, result.min_w


def _campaign(name: str, oracle_labels: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int, int],
              x0: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray, attack: BlackBoxAttack, config: DetectorConfig,
              pool: np.ndarray | None = None, ratio: float = 0.0, note: str = "") -> tuple[AttackRow, BlackBoxResult]:
    rec = Recorder(oracle_labels)
    inner = CallableOracle(rec, shape, 10)
    counter = (CamouflagedCounter(inner, pool, ratio, before=rec.before, seed=attack.substitute.seed)
               if pool is not None else QueryCounter(inner, before=rec.before))
    result = run_blackbox_attack(counter, x0, x_eval, y_eval, attack)
    at, at_lab, phase, min_w = _flag_position(rec.batches, config)
    transfer = result.report.transfer_rate if result.report else None
    noise = result.report.noise_rate if result.report else None
    sent = counter.total - counter.used("baseline")
    return AttackRow(name, sent, counter.used("labelling"), at, at_lab, phase, min_w, transfer, noise, note), result


def _evaluation_phase(name: str, oracle_labels: Callable[[np.ndarray], np.ndarray], x_eval: np.ndarray,
                      x_adv: np.ndarray, config: DetectorConfig) -> AttackRow:
    """A fresh key that labels clean images, then their adversarial examples (a substitute trained elsewhere)."""
    batches = []
    for phase, x in (("agreement", x_eval), ("evaluation", x_adv)):
        for i in range(0, len(x), 1000):
            batches.append((phase, x[i : i + 1000], oracle_labels(x[i : i + 1000])))
    at, _, phase, min_w = _flag_position(batches, config)
    return AttackRow(name, 2 * len(x_eval), 0, at, None, phase, min_w, None, None)


def _attacks(labels_of: Callable[[np.ndarray], np.ndarray], shape: tuple[int, int, int], x0: np.ndarray,
             x_eval: np.ndarray, y_eval: np.ndarray, base: SubstituteConfig, result: BlackBoxResult, train: Dataset,
             camouflage: str, config: DetectorConfig, seed: int, device: torch.device) -> list[AttackRow]:
    """The other attack streams: periodic step + reservoir, camouflage, the evaluation phases alone."""
    rows: list[AttackRow] = []
    sub = SubstituteConfig(**{**vars(base), "periodic_step": True, "reservoir": True, "tau": 3, "sigma": 3,
                              "kappa": 400})
    rows.append(_campaign("JBDA periodic step + reservoir (τ=3, σ=3, κ=400)", labels_of, shape, x0, x_eval, y_eval,
                          BlackBoxAttack(sub, FGSM(eps=0.3)), config)[0])
    console.print(rows[-1])
    for ratio in (float(r) for r in camouflage.split(",") if r.strip()):
        rows.append(_campaign(f"JBDA λ=-0.1 camouflaged: {ratio:g} natural per query", labels_of, shape, x0, x_eval,
                              y_eval, BlackBoxAttack(base, FGSM(eps=0.3)), config, pool=train.x, ratio=ratio,
                              note="the attacker's answer")[0])
        console.print(rows[-1])

    # The evaluation phases on their own, with the λ=-0.1 campaign's substitute.
    rows.append(_evaluation_phase("FGSM ε=0.3 evaluation phase alone", labels_of, x_eval, result.x_adv, config))
    console.print(rows[-1])
    model = result.substitute.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    jsma = JSMA()
    targets = choose_targets(jsma.target, result.label_before, 10, seed=seed, model=model, x=x_eval, device=device)
    x_jsma = np.concatenate([
        jsma.craft(model, as_batch(x_eval[i : i + 100], device), torch.from_numpy(targets[i : i + 100])).cpu().numpy()
        for i in range(0, len(x_eval), 100)])
    rows.append(_evaluation_phase("JSMA θ=+1 Υ=14.5% evaluation phase alone", labels_of, x_eval, x_jsma, config))
    console.print(rows[-1])

    return rows


@app.command()
def main(
    rho: int = typer.Option(3, help="ρ_max of the JBDA campaigns (the goal is a flag before ρ=3)"),
    train_epochs: int = typer.Option(10, help="Substitute training epochs per substitute epoch"),
    s0: int = typer.Option(150, help="|S0|: test images 0..s0-1"),
    eval_size: int = typer.Option(1000, help="Evaluation images (the agreement phase labels them first)"),
    camouflage: str = typer.Option("2", help="Natural images per attack query for the camouflaged campaigns"),
    benign_clients: int = typer.Option(100, help="Benign clients (≥100 for the false positive rate)"),
    benign_queries: int = typer.Option(1500, help="Queries per benign client"),
    throughput_s: float = typer.Option(5.0, help="Seconds per HTTP throughput cell"),
    skip_http: bool = typer.Option(False, help="Skip the HTTP throughput comparison"),
    skip_attacks: bool = typer.Option(False, help="Only the benign streams (and the HTTP part)"),
    seed: int = 0,
) -> None:
    torch.manual_seed(seed)
    device = torch.device("cpu")
    config = DetectorConfig()
    oracle, card = label_oracle("mnist", device)
    shape = tuple(card["input_shape"])
    test = load_dataset("mnist", "test", download=False)
    train = load_dataset("mnist", "train", download=False)
    x0 = test.x[:s0]
    x_eval, y_eval = test.x[s0 : s0 + eval_size], test.y[s0 : s0 + eval_size]
    labels_of = oracle.label
    console.print(f"detector: {config.model_dump()}; oracle mnist ({card['architecture']}); S0={s0}, ρ={rho}, "
                  f"evaluation {eval_size} images")

    rows: list[AttackRow] = []
    base = SubstituteConfig(substitute_epochs=rho, seed=seed, train_epochs=train_epochs)
    results = {}
    for lam in () if skip_attacks else (-0.1, 0.1):
        sub = SubstituteConfig(**{**vars(base), "lam": lam})
        row, results[lam] = _campaign(f"JBDA λ={lam:+.1f}, FGSM ε=0.3", labels_of, shape, x0, x_eval, y_eval,
                                      BlackBoxAttack(sub, FGSM(eps=0.3)), config)
        rows.append(row)
        console.print(rows[-1])
    if not skip_attacks:
        rows += _attacks(labels_of, shape, x0, x_eval, y_eval, base, results[-0.1], train, camouflage, config, seed,
                         device)
    benign = benign_streams(train, test, benign_clients, benign_queries, seed)
    flagged: dict[str, list[int]] = {}
    min_w: dict[str, float] = {}
    for kind, batches in benign:
        labelled = [(x, labels_of(x)) for x in batches]
        r = feed(labelled, config)
        flagged.setdefault(kind, []).append(r.alarm_at is not None)
        if r.min_w is not None:
            min_w[kind] = min(min_w.get(kind, 1.0), r.min_w)

    ratio_http = None if skip_http else throughput_ratio(throughput_s)
    _print(rows, flagged, min_w, ratio_http, s0, config)


def _print(rows: list[AttackRow], flagged: dict[str, list[int]], min_w: dict[str, float],
           ratio_http: tuple[float, float, float] | None, s0: int, config: DetectorConfig) -> None:
    before_rho3 = s0 * 2**3  # labelling queries once S_3 is labelled
    t = Table(title=f"Attack streams: queries until PRADA flags (δ={config.delta}, window {config.window}, "
                    f"{config.max_per_class} points per class)")
    for col in ("stream", "queries sent", "labelling", "flagged at (all queries)", "flagged at (labelling)",
                "phase", "min W", "transfer (noise)", f"before ρ=3 (<{before_rho3})", "PRADA paper"):
        t.add_column(col)
    for r in rows:
        jbda = r.name.startswith("JBDA")
        ok = "-" if not jbda else ("yes" if r.flagged_labelling is not None and r.flagged_labelling < before_rho3
                                   else "NO")
        t.add_row(r.name, str(r.queries), str(r.labelling), str(r.flagged_at) if r.flagged_at else "not flagged",
                  str(r.flagged_labelling) if r.flagged_labelling is not None else "-", r.flagged_phase or "-",
                  f"{r.min_w:.3f}" if r.min_w is not None else "-",
                  "-" if r.transfer is None else f"{r.transfer:.1%} ({'-' if r.noise is None else f'{r.noise:.1%}'})",
                  ok, "detected")
    console.print(t)
    b = Table(title="Benign streams: false positives")
    for col in ("stream", "clients", "flagged", "min W", "PRADA paper"):
        b.add_column(col)
    total = sum(len(v) for v in flagged.values())
    for kind, v in flagged.items():
        b.add_row(kind, str(len(v)), str(sum(v)), f"{min_w.get(kind, float('nan')):.3f}", "0 false positives")
    n_flagged = sum(sum(v) for v in flagged.values())
    b.add_row("all", str(total), f"{n_flagged} ({n_flagged / max(total, 1):.1%})", "", "")
    console.print(b)
    if ratio_http is not None:
        on, off, ratio = ratio_http
        console.print(f"Throughput over HTTP (batch 100, 4 clients): detector on {on:,.0f} labels/s, off {off:,.0f} "
                      f"labels/s, ratio {ratio:.2f} (goal ≥ 0.9)")


if __name__ == "__main__":
    app()
