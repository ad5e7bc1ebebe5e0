"""The campaign service's exceptions. Each one that ends a campaign maps to the `code` of its record's error.

    CampaignStopped(code)         ends the campaign as failed with `code` (budget_exhausted, ...)
    ├── CampaignCancelled         ... as cancelled, on request
    └── InvalidCampaign           invalid_campaign: the spec cannot be carried out (data, shapes, classes)
    CampaignLost                  the record left `running` under the worker (reaped): stop, write nothing
    TargetNotAllowed              target_not_allowed: the oracle URL is outside the allowlist (also 403 in the API)
    OracleError                   oracle_refused: the oracle refused for good (bad key, unknown model, bad input)
    OracleUnavailable             oracle_unavailable: transient failures outlasted the retries

The oracle client's `OracleBudgetExhausted` (the oracle's own budget for the key is spent) is an engine
`BudgetExhausted` and lives with the client: this module is imported by the API process, which never
loads the engine (nor torch).
"""

from __future__ import annotations


class CampaignStopped(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CampaignCancelled(CampaignStopped):
    def __init__(self) -> None:
        super().__init__("cancelled", "cancelled on request")


class InvalidCampaign(CampaignStopped):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_campaign", message)


class CampaignLost(Exception):
    """The record left `running` under our feet (reaped as lost): stop without writing anything."""


class TargetNotAllowed(ValueError):
    """The oracle URL is outside the allowlist; the message says what is allowed."""


class OracleError(Exception):
    """The oracle refused a request for good (bad key, unknown model, invalid input): no retry helps."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class OracleUnavailable(Exception):
    """Transient failures outlasted the retries."""


class OracleProtocolError(Exception):
    """The endpoint answered something its protocol does not allow (a redirect, a body of the wrong shape)."""

    code = "oracle_protocol_error"
