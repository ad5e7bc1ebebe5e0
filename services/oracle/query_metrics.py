"""Prometheus metrics of the oracle. Label values are bounded: client ids and model names, never keys.

/metrics is unauthenticated (Prometheus scrapes it), so it carries no account data: no client's remaining
budget (a client reads its own with GET /v1/usage, the admin every one with GET /v1/admin/clients); budgets
running out show as refusals with reason budget_exhausted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REFUSAL_REASONS = (
    "unauthorized", "revoked", "unknown_model", "bad_input", "body_too_large", "budget_exhausted",
    "rate_limited", "redis_unavailable", "internal_error", "request_in_progress", "too_many_auth_failures",
)


class OracleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.inputs_answered = Counter(
            "bbrange_oracle_inputs_answered", "Inputs labelled and answered (one input is one query)",
            ["client", "model"], registry=r,
        )
        self.replayed_inputs = Counter(
            "bbrange_oracle_replayed_inputs", "Inputs answered again, uncharged, for a retried Idempotency-Key",
            ["client", "model"], registry=r,
        )
        self.refusals = Counter(
            "bbrange_oracle_refusals", "Predict requests refused, by reason", ["reason", "model"], registry=r,
        )
        self.request_seconds = Histogram(
            "bbrange_oracle_request_seconds", "Predict request latency, from first byte to response",
            ["model", "encoding"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.batch_size = Histogram(
            "bbrange_oracle_batch_size", "Inputs per answered predict request", ["model"], registry=r,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
        )
        self.inference_seconds = Histogram(
            "bbrange_oracle_inference_seconds",
            "Model forward time, one per forward (however many requests it answers)", ["model"], registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.forward_inputs = Histogram(
            "bbrange_oracle_forward_inputs", "Inputs per model forward (requests gathered by dynamic batching)",
            ["model"], registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.forward_requests = Histogram(
            "bbrange_oracle_forward_requests", "Requests answered by one model forward", ["model"], registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        for reason in REFUSAL_REASONS:  # so dashboards see zeros, not gaps
            self.refusals.labels(reason=reason, model="")

    def observe_forward(self, model: str, inputs: int, requests: int, seconds: float) -> None:
        self.inference_seconds.labels(model=model).observe(seconds)
        self.forward_inputs.labels(model=model).observe(inputs)
        self.forward_requests.labels(model=model).observe(requests)
