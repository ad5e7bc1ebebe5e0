"""Metrics of a crafted set: distortion, transfer to the oracle, per-class matrices, and the thesis's
hardness H(s, t) and adversarial distance A(X, t).

Transfer is measured through the counting oracle (phase "evaluation"), so it costs queries like any
other look at the oracle.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from bbrange.attacker.engine.errors import QueryPhase
from bbrange.attacker.engine.jsma import saliency_terms
from bbrange.attacker.engine.oracles import QueryCounter


@dataclass(frozen=True)
class Distortion:
    l0: np.ndarray  # fraction of features changed, per sample
    l2: np.ndarray
    linf: np.ndarray

    def mean_l0(self, mask: np.ndarray | None = None) -> float:
        values = self.l0 if mask is None else self.l0[mask]
        return float(values.mean()) if values.size else float("nan")

    def first(self, n: int) -> Distortion:
        """The distortions of the first n samples (those the oracle labelled when a budget cut evaluation short)."""
        return Distortion(self.l0[:n], self.l2[:n], self.linf[:n])


def distortion(x: np.ndarray | torch.Tensor, x_adv: np.ndarray | torch.Tensor) -> Distortion:
    x = torch.as_tensor(x).detach().cpu()
    x_adv = torch.as_tensor(x_adv).detach().cpu()
    delta = (x_adv - x).reshape(x.shape[0], -1).double()
    return Distortion(
        l0=(delta != 0).double().mean(1).numpy(),
        l2=delta.norm(dim=1).numpy(),
        linf=delta.abs().amax(1).numpy() if delta.shape[1] else np.zeros(len(delta)),
    )


@dataclass(frozen=True)
class TransferReport:
    """What the oracle made of a crafted set. Rates are over the `samples` the oracle labelled.

    `transfer_rate` is the attack's own success: for an untargeted attack the oracle's label differs
    from the true one (the paper's "misclassified"), for a targeted one it is the target.
    """

    samples: int
    transfer_rate: float | None
    misclassification_rate: float | None  # oracle label ≠ true label
    label_change_rate: float | None  # oracle label ≠ the oracle's label of the clean input
    target_rate: float | None  # oracle label = the attack's target (targeted attacks)
    mean_l0: float | None  # mean fraction of features changed
    mean_l2: float | None
    mean_linf: float | None
    queries: int  # evaluation queries this report cost
    clean_accuracy: float | None = None  # the oracle's accuracy on the clean images (needs their labels)
    # transfer over the images the oracle labelled correctly before the attack (the paper's sense)
    transfer_rate_on_correct: float | None = None
    noise_rate: float | None = None  # the same success criterion, for random noise of the same size
    noise_misclassification_rate: float | None = None
    lift_over_noise: float | None = None  # transfer_rate − noise_rate
    noise_samples: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def success_of(label_after: np.ndarray, y_true: np.ndarray, targets: np.ndarray | None) -> np.ndarray:
    """Per sample: reached its target (targeted) or left its true class (untargeted)."""
    label_after = np.asarray(label_after)
    if targets is not None:
        return np.asarray(label_after == np.asarray(targets)[: len(label_after)])
    return np.asarray(label_after != np.asarray(y_true)[: len(label_after)])


def summarise(
    label_after: np.ndarray,
    y_true: np.ndarray,
    *,
    clean_oracle_labels: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    distortions: Distortion | None = None,
    queries: int = 0,
    noise_labels: np.ndarray | None = None,
) -> TransferReport:
    """The report of the first len(label_after) samples (fewer than crafted when the budget ran out);
    `noise_labels` are the oracle's labels of the first samples moved by random noise instead."""
    n = len(label_after)
    y_true = np.asarray(y_true)[:n]

    def rate(hits: np.ndarray) -> float | None:
        return float(np.mean(hits)) if len(hits) else None

    def mean(values: np.ndarray | None) -> float | None:
        return float(values[:n].mean()) if values is not None and n else None

    success = success_of(label_after, y_true, targets)
    correct = None if clean_oracle_labels is None else np.asarray(clean_oracle_labels)[:n] == y_true
    noise_rate = noise_misclassified = lift = None
    m = 0
    if noise_labels is not None:
        m = len(noise_labels)
        noise_rate = rate(success_of(noise_labels, y_true[:m], None if targets is None else np.asarray(targets)[:m]))
        noise_misclassified = rate(noise_labels != y_true[:m])
        transfer_on_same = rate(success[:m])  # the noise may cover fewer samples when the budget ran out
        lift = None if noise_rate is None or transfer_on_same is None else transfer_on_same - noise_rate
    return TransferReport(
        samples=n,
        transfer_rate=rate(success),
        misclassification_rate=rate(label_after != y_true),
        label_change_rate=None if clean_oracle_labels is None else rate(label_after != clean_oracle_labels[:n]),
        target_rate=None if targets is None else rate(label_after == np.asarray(targets)[:n]),
        mean_l0=mean(distortions.l0 if distortions else None),
        mean_l2=mean(distortions.l2 if distortions else None),
        mean_linf=mean(distortions.linf if distortions else None),
        queries=queries,
        clean_accuracy=None if correct is None else rate(correct),
        transfer_rate_on_correct=None if correct is None else rate(success[correct]),
        noise_rate=noise_rate,
        noise_misclassification_rate=noise_misclassified,
        lift_over_noise=lift,
        noise_samples=m,
    )


def oracle_labels(oracle: QueryCounter, x: np.ndarray | torch.Tensor, phase: QueryPhase = "evaluation",
                  batch_size: int = 1000) -> np.ndarray:
    """The oracle's labels of x, asked `batch_size` at a time; costs len(x) queries of `phase`."""
    x = torch.as_tensor(x).detach().cpu().numpy().astype(np.float32, copy=False)
    if not len(x):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([oracle.label(x[i : i + batch_size], phase) for i in range(0, len(x), batch_size)])


def transfer(
    oracle: QueryCounter,
    x_adv: np.ndarray | torch.Tensor,
    y_true: np.ndarray,
    *,
    x_clean: np.ndarray | torch.Tensor | None = None,
    clean_oracle_labels: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    batch_size: int = 1000,
) -> TransferReport:
    """Ask the oracle for the labels of adversarial inputs; costs len(x_adv) evaluation queries."""
    before = oracle.used("evaluation")
    labels = oracle_labels(oracle, x_adv, "evaluation", batch_size)
    return summarise(labels, y_true, clean_oracle_labels=clean_oracle_labels, targets=targets,
                     distortions=None if x_clean is None else distortion(x_clean, x_adv),
                     queries=oracle.used("evaluation") - before)


@dataclass(frozen=True)
class PairMatrices:
    counts: np.ndarray  # (C, C) samples per source-target pair
    success_rate: np.ndarray  # (C, C), NaN where no sample
    distortion_successful: np.ndarray  # (C, C) mean L0 fraction of successful samples, NaN where none


def pair_matrices(sources: np.ndarray, targets: np.ndarray, success: np.ndarray, l0: np.ndarray,
                  num_classes: int) -> PairMatrices:
    """The thesis's Figures 6.2 and 6.3: success and distortion per (source, target) class pair."""
    sources, targets = np.asarray(sources), np.asarray(targets)
    success, l0 = np.asarray(success, dtype=bool), np.asarray(l0, dtype=np.float64)
    pair = sources * num_classes + targets
    size = num_classes * num_classes
    counts = np.bincount(pair, minlength=size).astype(np.float64)
    hits = np.bincount(pair, weights=success.astype(np.float64), minlength=size)
    dist = np.bincount(pair, weights=np.where(success, l0, 0.0), minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(counts > 0, hits / counts, np.nan)
        mean_dist = np.where(hits > 0, dist / hits, np.nan)
    shape = (num_classes, num_classes)
    return PairMatrices(counts.reshape(shape).astype(np.int64), rate.reshape(shape), mean_dist.reshape(shape))


def hardness(success_rates: np.ndarray, distortions: np.ndarray) -> np.ndarray:
    """H(s, t) ≈ Σ_k (τ_{k+1} − τ_k)·(ε_{k+1} + ε_k)/2 (thesis Eq. 6.2).

    Both arrays are (K, C, C), one slice per maximum distortion Υ_k in increasing order: τ_k the
    success rate and ε_k the mean distortion of successful samples at Υ_k. A pair with no successful
    sample at some Υ_k contributes ε = 0 there (its τ_k is 0, so the trapezoid is unaffected when
    τ does not move).
    """
    tau = np.nan_to_num(np.asarray(success_rates, dtype=np.float64))
    eps = np.nan_to_num(np.asarray(distortions, dtype=np.float64))
    if tau.shape != eps.shape or tau.ndim < 1 or tau.shape[0] < 2:
        raise ValueError("need matching (K, ...) arrays with K >= 2 maximum distortions")
    return np.asarray(((tau[1:] - tau[:-1]) * (eps[1:] + eps[:-1]) / 2).sum(0))


def hardness_by_distortion(sources: np.ndarray, targets: np.ndarray, success: np.ndarray, l0: np.ndarray,
                           num_classes: int, upsilons: np.ndarray) -> np.ndarray:
    """H(s, t) from one JSMA run at the largest Υ: JSMA stops at its first success, so a sample that succeeded
    with distortion d would have succeeded under any Υ_k ≥ d. τ_k counts the successes with L0 ≤ Υ_k (a
    pair that moved one feature makes this a slight over-count against the thesis's iteration limit)."""
    taus, epss = [], []
    for u in upsilons:
        m = pair_matrices(sources, targets, np.asarray(success) & (np.asarray(l0) <= u + 1e-12), l0, num_classes)
        taus.append(m.success_rate)
        epss.append(m.distortion_successful)
    h = hardness(np.stack(taus), np.stack(epss))
    h[m.counts == 0] = np.nan  # no sample of that pair: unknown, not easy
    return h


def adversarial_distance(
    model: nn.Module,
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    theta: float = 1.0,
    pairs: bool = False,
    chunk_elems: int = 1 << 24,
) -> np.ndarray:
    """A(X, t) = 1 − (1/M)·Σ_i 1[S(X, t)[i] > 0] (thesis Eq. 6.3), from the first-iteration saliency map.

    With `pairs=True`, the variant the thesis plots: the fraction of feature pairs (p < q) whose pair
    saliency is positive, i.e. α_p+α_q > 0 and β_p+β_q < 0 for θ > 0 (signs reversed for θ < 0).
    """
    model.eval()
    targets = torch.as_tensor(targets, dtype=torch.long, device=x.device)
    _, alpha, beta = saliency_terms(model, x, targets)
    sign = 1.0 if theta > 0 else -1.0
    a, nb = sign * alpha, -sign * beta
    m = a.shape[1]
    if not pairs:
        return (1.0 - ((a > 0) & (nb > 0)).double().mean(1)).cpu().numpy()
    positive = torch.zeros(a.shape[0], dtype=torch.float64, device=a.device)
    rows = max(1, chunk_elems // (a.shape[0] * m))
    upper = torch.ones(m, m, dtype=torch.bool, device=a.device).triu(1)
    for s in range(0, m, rows):
        e = min(m, s + rows)
        ok = ((a[:, s:e, None] + a[:, None, :]) > 0) & ((nb[:, s:e, None] + nb[:, None, :]) > 0) & upper[s:e]
        positive += ok.sum((1, 2)).double()
    return (1.0 - positive / (m * (m - 1) / 2)).cpu().numpy()
