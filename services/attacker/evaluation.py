"""Metrics of a crafted set: distortion, transfer to the oracle, per-class matrices, and the thesis's
hardness H(s, t) and adversarial distance A(X, t).

Transfer is measured through the counting oracle (phase "evaluation"), so it costs queries like any
other look at the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bbrange.attacker.jsma import saliency_terms
from bbrange.attacker.oracle_client import QueryCounter


@dataclass(frozen=True)
class Distortion:
    l0: np.ndarray  # fraction of features changed, per sample
    l2: np.ndarray
    linf: np.ndarray

    def mean_l0(self, mask: np.ndarray | None = None) -> float:
        values = self.l0 if mask is None else self.l0[mask]
        return float(values.mean()) if values.size else float("nan")


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
    samples: int
    misclassified: float  # oracle label ≠ true label
    label_changed: float | None  # oracle label ≠ the oracle's label of the clean input
    reached_target: float | None  # oracle label = the attack's target (targeted runs)
    queries: int

    def as_dict(self) -> dict[str, float | int | None]:
        return dict(self.__dict__)


def transfer(
    oracle: QueryCounter,
    x_adv: np.ndarray | torch.Tensor,
    y_true: np.ndarray,
    *,
    clean_oracle_labels: np.ndarray | None = None,
    targets: np.ndarray | None = None,
    batch_size: int = 1000,
) -> TransferReport:
    """Ask the oracle for the labels of adversarial inputs; costs len(x_adv) evaluation queries."""
    x_adv = torch.as_tensor(x_adv).detach().cpu().numpy().astype(np.float32, copy=False)
    before = oracle.used("evaluation")
    labels = np.concatenate(
        [oracle.label(x_adv[i : i + batch_size], "evaluation") for i in range(0, len(x_adv), batch_size)]
    ) if len(x_adv) else np.zeros(0, dtype=np.int64)
    y_true = np.asarray(y_true)
    return TransferReport(
        samples=len(labels),
        misclassified=float((labels != y_true).mean()),
        label_changed=None if clean_oracle_labels is None else float((labels != clean_oracle_labels).mean()),
        reached_target=None if targets is None else float((labels == np.asarray(targets)).mean()),
        queries=oracle.used("evaluation") - before,
    )


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
    return ((tau[1:] - tau[:-1]) * (eps[1:] + eps[:-1]) / 2).sum(0)


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
