"""What a campaign looks like from outside: its record in Redis and in every API answer."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CampaignState(str, Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (CampaignState.succeeded, CampaignState.failed, CampaignState.cancelled)


class CampaignPhase(str, Enum):
    queued = "queued"
    connecting = "connecting"  # reading the target model's shape from the oracle
    agreement = "agreement"  # the oracle's labels of the evaluation images (before any perturbation)
    substitute = "substitute"  # Algorithm 1: labelling, training, Jacobian augmentation
    crafting = "crafting"
    attack = "attack"  # a query attack's search, asking the oracle itself (no substitute)
    evaluation = "evaluation"  # the oracle's labels of the adversarial examples
    saving = "saving"
    done = "done"


class EpochMetrics(BaseModel):
    rho: int
    set_size: int = Field(description="|S_ρ| the substitute was trained on")
    new_points_labelled: int
    labelling_queries: int = Field(description="Cumulative")
    substitute_accuracy: float | None = Field(description="On the evaluation images, against true labels")
    oracle_agreement: float | None = Field(description="On the evaluation images, against the oracle's labels")
    step_size: float
    train_loss: float
    wall_s: float


class KeyUsage(BaseModel):
    """One of a campaign's several API keys (by its index in the spec's list; the key itself is never shown)."""

    index: int
    inputs_sent: int = Field(0, description="Inputs sent with this key, retries and refused requests included")
    queries: int = Field(0, description="Inputs the oracle answered (and charged) to this key")
    flagged: str | None = Field(None, description="The oracle's first X-Extraction-Flagged for this key")
    flagged_after_queries: int | None = Field(None, description="The campaign's queries answered (all keys) before "
                                                                "the oracle first said this key was flagged")
    flagged_after_key_queries: int | None = Field(None, description="This key's own queries answered by then")
    dropped: str | None = Field(None, description="Why it left the rotation: budget_exhausted or "
                                                  "suspected_extraction (blocked)")


class QueryCounts(BaseModel):
    labelling: int = 0
    agreement: int = 0
    attack: int = Field(0, description="A query attack's own questions: initialisation, binary searches, gradient "
                                       "estimates")
    evaluation: int = 0
    baseline: int = Field(0, description="The noise baseline: the evaluation images moved by random noise")
    total: int = 0
    inputs_sent: int = Field(0, description="Inputs sent to the oracle, retries and refused requests included")
    batch_size: int | None = Field(None, description="Inputs per request the campaign settled on (halved from a "
                                                     "batch the endpoint refused as too large)")
    keys: list[KeyUsage] | None = Field(None, description="A campaign with several API keys (taking turns): "
                                                          "each key's share, in the spec's order")


class SizeResults(BaseModel):
    """FGSM at one ε of a campaign that crafted several from its one substitute."""

    eps: float
    samples: int = Field(description="Adversarial examples of this size labelled by the oracle")
    transfer_rate: float | None
    misclassification_rate: float | None = None
    transfer_rate_on_correct: float | None = None
    noise_rate: float | None = Field(None, description="Random ±ε on the same images")
    lift_over_noise: float | None = None
    noise_samples: int = 0
    mean_l2: float | None = None


class CampaignResults(BaseModel):
    # An attack plug-in's own measures (`Attack.measures`) join the results under the keys it names; JSMA's
    # are declared below so that the schema documents them.
    model_config = ConfigDict(extra="allow")

    method: str | None = Field(None, description="The crafting method (the spec's crafting.method)")
    crafting: str | None = Field(None, description="The crafting method and its settings in a few words")
    substitute_accuracy: float | None = Field(None, description="Last substitute epoch, on the evaluation images")
    oracle_agreement: float | None = Field(None, description="Last substitute epoch: share of evaluation images "
                                                             "the substitute labels as the oracle does")
    samples: int = Field(0, description="Adversarial examples labelled by the oracle")
    transfer_rate: float | None = Field(None, description="FGSM: share the oracle misclassifies (vs true labels); "
                                                          "JSMA: share the oracle puts in the target class")
    misclassification_rate: float | None = None
    label_change_rate: float | None = Field(None, description="Share whose oracle label differs from the clean image's")
    target_rate: float | None = Field(None, description="JSMA only: share the oracle labels as the target")
    mean_l0: float | None = Field(None, description="Mean fraction of features changed")
    mean_l2: float | None = None
    mean_linf: float | None = None
    clean_accuracy: float | None = Field(None, description="The oracle's accuracy on the clean evaluation images")
    transfer_rate_on_correct: float | None = Field(
        None, description="Transfer over the images the oracle labelled correctly before the attack")
    noise_rate: float | None = Field(
        None, description="The honest baseline: the same success criterion for the same images moved by random "
                          "noise of the same size (random ±ε for FGSM, as many random pixels for JSMA)")
    noise_misclassification_rate: float | None = None
    lift_over_noise: float | None = Field(None, description="transfer_rate − noise_rate")
    noise_samples: int = Field(0, description="Images the noise baseline was measured on")
    mean_adversarial_distance: float | None = Field(
        None, description="JSMA: the thesis's A(X, t) on the substitute, averaged over the examples")
    hardness: list[list[float | None]] | None = Field(
        None, description="JSMA: the thesis's H(s, t) on the substitute, per source (row) and target (column) "
                          "class, over Υ_k = Υ·k/5; null where no example had that pair")
    by_eps: list[SizeResults] | None = Field(
        None, description="FGSM with a list of ε: each size's transfer and noise baseline, the headline's first")
    stop_reason: str | None = Field(None, description="Why substitute training stopped early, if it did")
    distortion_by_queries: dict[str, Any] | None = Field(
        None, description="A query attack: the median and quartiles of its examples' distortion (its norm) after "
                          "each checkpoint's queries per image: {norm, queries, median, q1, q3}")
    success_by_size: dict[str, Any] | None = Field(
        None, description="A query attack: success at fixed perturbation sizes beside random noise of the same norm "
                          "and size on the same images: {norm, points: [{size, success_rate, noise_rate}]}")
    distortion_by_queries_other: dict[str, Any] | None = Field(
        None, description="A query attack: distortion_by_queries of the same examples (chosen by the attack's norm) "
                          "measured in the other norm (L∞ for an L2 attack, L2 for an L∞ one)")
    success_by_size_other: dict[str, Any] | None = Field(
        None, description="A query attack: success_by_size in the other norm, beside noise of that norm and size")
    queries_per_image: dict[str, Any] | None = Field(
        None, description="A query attack: the oracle queries its search spent per image: {median, max, total}")
    query_attack_stop_reason: str | None = Field(
        None, description="A query attack: why its search or its noise baseline stopped early (the budget), if it did")
    labelling_queries: int | None = Field(
        None, description="The hybrid: the labelling queries its substitute cost, once for the whole set")
    amortised_labelling_queries_per_image: float | None = Field(
        None, description="The hybrid: labelling_queries ÷ images attacked, the share of the substitute per image")
    distortion_by_queries_amortised: dict[str, Any] | None = Field(
        None, description="The hybrid: distortion_by_queries at total queries per image (search + amortised "
                          "labelling), the curve to compare with a decision-based attack from a random start")
    transfer_eps: float | None = Field(None, description="The hybrid: the FGSM size of its transferred starts")
    transfer_starts_confirmed: float | None = Field(
        None, description="The hybrid: share of the images whose transferred start the oracle misclassified (the "
                          "search started there; elsewhere from its own random start)")
    flagged: str | None = Field(None, description="The oracle's extraction detector flagged the key "
                                                  "(its X-Extraction-Flagged: detector and its own query count)")
    flagged_after_queries: int | None = Field(None, description="Queries answered to this campaign before the "
                                                                "oracle first said it was flagged (or blocked it)")
    distortion_after_bad_queries: dict[str, Any] | None = Field(
        None, description="A query attack the oracle flagged: the bad-query figure (Debenedetti, Carlini & Tramèr, "
                          "SaTML 2024), the median distortion the images had reached after 100 / 500 / 1,000 queries "
                          "of their own answered under the flag: {norm, attack_queries_at_flag, "
                          "images_with_bad_queries, median_queries_per_image_at_flag, points: [{bad_queries, "
                          "median}]}; read at the last checkpoint within that count (a lower bound)")


class CampaignError(BaseModel):
    code: str = Field(description="budget_exhausted, worker_lost, oracle_unavailable, oracle_refused, invalid_campaign, "
                                  "enqueue_failed, suspected_extraction (the oracle blocked the key), internal_error; "
                                  "cancelled, user_revoked (its user was revoked before it started)")
    message: str


class CampaignRecord(BaseModel):
    id: str
    name: str | None = None
    state: CampaignState
    phase: CampaignPhase = CampaignPhase.queued
    progress: float = Field(0.0, ge=0, le=1)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancel_requested: bool = False
    owner: str | None = Field(None, description="The id of the user who submitted it")
    worker: str | None = Field(None, description="The worker (and work-horse pid) running or that ran it")
    spec: dict[str, Any] = Field(description="The validated spec, API key masked")
    target_model: dict[str, Any] | None = Field(
        None, description="What the endpoint said about the model when the campaign connected (for a bbrange "
                          "oracle, its GET /v1/models entry: dataset, input shape, classes)")
    epochs: list[EpochMetrics] = Field(default_factory=list)
    queries: QueryCounts = Field(default_factory=QueryCounts)
    results: CampaignResults | None = None
    error: CampaignError | None = None
    samples_available: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)
