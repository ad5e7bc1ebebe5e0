"""The campaign service's exceptions. Every one that ends a campaign is a `CampaignFailure`, which carries what its
record will say: the error's `error_code` and the final `state`. The runner catches that one root.

    CampaignFailure(error_code, message, state=failed)
    ├── CampaignCancelled         cancelled (state cancelled): on request
    ├── BudgetSpent               budget_exhausted: the query budget ran out where nothing more can be measured
    ├── InvalidCampaign           invalid_campaign: the spec cannot be carried out (data, shapes, classes, sealing)
    │   └── UserDataError         the user's images are unusable (storage.user_data; also a 400 in the API)
    ├── TargetNotAllowed          target_not_allowed: the oracle URL is outside the allowlist (also 403 in the API)
    ├── OracleError               oracle_refused, or suspected_extraction: the oracle refused for good; its own
    │                             code stays in `code` (bad key, unknown model, bad input)
    ├── OracleUnavailable         oracle_unavailable: transient failures outlasted the retries
    └── OracleProtocolError       oracle_protocol_error: an answer its protocol does not allow
    CampaignLost                  not a failure: the record left `running` under the worker (reaped): stop, write nothing

The engine's `BudgetExhausted` (and the oracle client's `OracleBudgetExhausted`, one of them) is the engine's own
word, mapped to `BudgetSpent` where the worker calls the engine (worker.lifecycle): this module is imported by the
API process, which never loads the engine (nor torch).
"""

from __future__ import annotations

from bbrange.attacker.campaigns.storage.records import CampaignError, CampaignState


class CampaignFailure(Exception):
    """Ends a campaign in `state` with the record error `error_code`; the message is the record's."""

    def __init__(self, error_code: str, message: str, state: CampaignState = CampaignState.failed) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.state = state

    def record_error(self) -> CampaignError:
        return CampaignError(code=self.error_code, message=self.message)


class CampaignCancelled(CampaignFailure):
    def __init__(self) -> None:
        super().__init__("cancelled", "cancelled on request", CampaignState.cancelled)


class BudgetSpent(CampaignFailure):
    def __init__(self, message: str) -> None:
        super().__init__("budget_exhausted", message)


class InvalidCampaign(CampaignFailure, ValueError):
    def __init__(self, message: str) -> None:
        super().__init__("invalid_campaign", message)


class TargetNotAllowed(CampaignFailure, ValueError):
    """The oracle URL is outside the allowlist; the message says what is allowed."""

    def __init__(self, message: str) -> None:
        super().__init__("target_not_allowed", message)


class OracleError(CampaignFailure):
    """The oracle refused a request for good (bad key, unknown model, invalid input): no retry helps. `code` is the
    oracle's own; the record says oracle_refused, or suspected_extraction when the oracle's detector blocked the key."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(code if code == "suspected_extraction" else "oracle_refused", message)
        self.code = code
        self.status = status


class OracleUnavailable(CampaignFailure):
    """Transient failures outlasted the retries."""

    def __init__(self, message: str) -> None:
        super().__init__("oracle_unavailable", message)


class OracleProtocolError(CampaignFailure):
    """The endpoint answered something its protocol does not allow (a redirect, a body of the wrong shape)."""

    def __init__(self, message: str) -> None:
        super().__init__("oracle_protocol_error", message)


class CampaignLost(Exception):
    """The record left `running` under our feet (reaped as lost): stop without writing anything."""
