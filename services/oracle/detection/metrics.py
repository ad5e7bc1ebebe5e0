"""The detector's Prometheus metrics, on the oracle's registry. Labels: client ids and model names, never keys."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from bbrange.oracle.query_metrics import OracleMetrics

DETECTORS = ("prada", "blacklight")
REASONS = DETECTORS  # a flag's reason is the detector that raised it
POLICIES = ("observe", "flag", "block")


class DetectionMetrics:
    def __init__(self, oracle: OracleMetrics) -> None:
        r = oracle.registry
        self.statistic = Gauge(
            "bbrange_oracle_detection_statistic",
            "The detector's statistic per client (prada: Shapiro-Wilk W of the query distances, alarm below δ; "
            "blacklight: the most hashes one of its last queries shared with an earlier query, a match from T)",
            ["client", "model", "detector"], registry=r, multiprocess_mode="min",
        )
        self.flagged = Gauge(
            "bbrange_oracle_detection_flagged", "1 while a client is flagged as a suspected extraction (policy "
            "flag or block), 0 after an admin cleared it", ["client", "reason"], registry=r,
            multiprocess_mode="max",
        )
        self.flags = Counter(
            "bbrange_oracle_detection_flags", "Flags raised, by reason, model and the policy in force",
            ["reason", "model", "policy"], registry=r,
        )
        self.queries_until_flag = Histogram(
            "bbrange_oracle_detection_queries_until_flag", "The client's queries of the model when it was flagged",
            ["reason", "model"], registry=r,
            buckets=(100, 250, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000),
        )
        self.blocked = Counter(
            "bbrange_oracle_detection_blocked_inputs", "Inputs refused with 403 suspected_extraction (never charged)",
            ["model"], registry=r,
        )
        self.update_seconds = Histogram(
            "bbrange_oracle_detection_update_seconds", "Detector work per coalesced update (off the response path)",
            ["model", "detector"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.dropped = Counter(
            "bbrange_oracle_detection_dropped_inputs", "Answered inputs the detector never saw (queue full or Redis "
            "error)", ["model", "detector"], registry=r,
        )
        self.blacklight_matches = Counter(
            "bbrange_oracle_detection_blacklight_matches", "Queries Blacklight matched with an earlier query (at least "
            "T shared hashes), by whose the earlier query was (same_client, other_client)", ["model", "owner"],
            registry=r,
        )
        self.blacklight_fingerprints = Counter(
            "bbrange_oracle_detection_blacklight_fingerprints", "Fingerprints of answered queries: stored, resent (an "
            "exact re-send of a stored query: neither stored nor matched), dropped (the model's cap was reached: "
            "matched, not stored)", ["model", "outcome"], registry=r,
        )
        for reason in REASONS:  # so dashboards see zeros, not gaps
            for policy in POLICIES:
                self.flags.labels(reason=reason, model="", policy=policy)
        for detector in DETECTORS:
            self.dropped.labels(model="", detector=detector)
        for owner in ("same_client", "other_client"):
            self.blacklight_matches.labels(model="", owner=owner)
        for outcome in ("stored", "resent", "dropped"):
            self.blacklight_fingerprints.labels(model="", outcome=outcome)
        oracle.refusals.labels(reason="suspected_extraction", model="")

    @classmethod
    def of(cls, oracle: OracleMetrics) -> DetectionMetrics:
        """One per registry, however often an app's lifespan starts."""
        existing = getattr(oracle, "_detection_metrics", None)
        if existing is None:
            existing = cls(oracle)
            oracle._detection_metrics = existing  # type: ignore[attr-defined]
        return existing
