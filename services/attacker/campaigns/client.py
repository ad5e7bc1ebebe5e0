"""A typed client of the attacker API (torch-free: httpx and the API's own pydantic models): submit a campaign,
read it, follow it to the end, cancel it, read its samples and its report, and (as the admin) manage users.
Every refusal raises bbrange.shared.service_client.ServiceError carrying the API's error body."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_result,
    stop_after_delay,
    stop_never,
    wait_fixed,
)
from tenacity.retry import retry_base

from bbrange.attacker.campaigns.api.responses import CampaignAccepted, CampaignPage, CreatedUser, SamplePage
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.target import REVEAL_SECRETS
from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState
from bbrange.attacker.campaigns.storage.users import User
from bbrange.shared.service_client import ServiceError, bearer, send

SERVICE = "attacker API"
Progress = Callable[[CampaignRecord], None]


class CampaignTimeout(TimeoutError):
    """A campaign did not reach what was waited for in time; `record` is the last one read."""

    def __init__(self, message: str, record: CampaignRecord | None) -> None:
        super().__init__(message)
        self.record = record


def spec_json(spec: CampaignSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The spec as the API takes it: a dict as given (the API validates it), a CampaignSpec with its secrets."""
    if isinstance(spec, CampaignSpec):
        return spec.model_dump(mode="json", context=REVEAL_SECRETS, exclude_none=True)
    return dict(spec)


class AttackerClient:
    def __init__(self, url: str = "", token: str = "", *, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None, http: httpx.Client | None = None) -> None:
        """A client of the API at `url` as the user (or admin) of `token`; or over an httpx client given."""
        self.http = http if http is not None else httpx.Client(base_url=url, timeout=timeout_s, headers=bearer(token),
                                                               transport=transport)
        self.url = str(self.http.base_url).rstrip("/")
        self._owned = http is None

    def __enter__(self) -> AttackerClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return send(self.http, SERVICE, method, path, **kwargs)

    @staticmethod
    def _path(cid: str) -> str:
        return f"/attacks/{quote(cid, safe='')}"

    # ------------------------------------------------------------------------------------ campaigns

    def submit(self, spec: CampaignSpec | Mapping[str, Any]) -> CampaignAccepted:
        return CampaignAccepted.model_validate(self._call("POST", "/attacks", json=spec_json(spec)).json())

    def get(self, cid: str) -> CampaignRecord:
        return CampaignRecord.model_validate(self._call("GET", self._path(cid)).json())

    def list_campaigns(self, state: CampaignState | None = None, offset: int = 0, limit: int = 20) -> CampaignPage:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if state is not None:
            params["state"] = CampaignState(state).value
        return CampaignPage.model_validate(self._call("GET", "/attacks", params=params).json())

    def cancel(self, cid: str) -> CampaignRecord:
        return CampaignRecord.model_validate(self._call("POST", self._path(cid) + "/cancel").json())

    def delete(self, cid: str) -> CampaignRecord:
        return CampaignRecord.model_validate(self._call("DELETE", self._path(cid)).json())

    def wait_for(self, cid: str, predicate: Callable[[CampaignRecord], bool], timeout_s: float | None = None,
                 poll_s: float = 1.0, on_progress: Progress | None = None, what: str = "",
                 through_outages: bool = False) -> CampaignRecord:
        """Read the campaign every poll_s until predicate holds; CampaignTimeout after timeout_s (None: never).
        through_outages: an unreachable API or its 503 (its Redis down) is waited out instead of raised."""
        last: list[CampaignRecord] = []

        def read() -> CampaignRecord:
            record = self.get(cid)
            last[:] = [record]
            if on_progress is not None:
                on_progress(record)
            return record

        retry: retry_base = retry_if_result(lambda r: not predicate(r))
        if through_outages:
            retry = retry | retry_if_exception(lambda e: isinstance(e, ServiceError) and e.status in (0, 503))
        poll = Retrying(stop=stop_never if timeout_s is None else stop_after_delay(timeout_s), wait=wait_fixed(poll_s),
                        retry=retry)
        try:
            return poll(read)
        except RetryError:
            record = last[0] if last else None
            state = "never read" if record is None else f"last {record.state.value}, phase {record.phase.value}"
            raise CampaignTimeout(f"timed out after {timeout_s:.0f}s waiting for {what or 'campaign ' + cid} "
                                  f"({state})", record) from None

    def follow(self, cid: str, on_progress: Progress | None = None, timeout_s: float | None = None,
               poll_s: float = 1.0) -> CampaignRecord:
        """The campaign's record once it is succeeded, failed or cancelled; on_progress sees every read."""
        return self.wait_for(cid, lambda r: r.state.finished, timeout_s, poll_s, on_progress,
                             f"campaign {cid} to finish")

    def run(self, spec: CampaignSpec | Mapping[str, Any], on_progress: Progress | None = None,
            timeout_s: float | None = None, poll_s: float = 1.0) -> CampaignRecord:
        """Submit and follow to the end."""
        return self.follow(self.submit(spec).id, on_progress, timeout_s, poll_s)

    # ------------------------------------------------------------------------------------ results

    def samples(self, cid: str, offset: int = 0, limit: int = 50) -> SamplePage:
        r = self._call("GET", self._path(cid) + "/samples", params={"offset": offset, "limit": limit})
        return SamplePage.model_validate(r.json())

    def samples_npz(self, cid: str) -> bytes:
        return self._call("GET", self._path(cid) + "/samples.npz").content

    def samples_png(self, cid: str) -> bytes:
        return self._call("GET", self._path(cid) + "/samples.png").content

    def report(self, cid: str, timeout_s: float = 120.0) -> str:
        """The campaign's report, one self-contained HTML page."""
        return self._call("GET", self._path(cid) + "/report", timeout=timeout_s).text

    def model_report(self, model: str, params: Mapping[str, str] | None = None, timeout_s: float = 120.0) -> str:
        return self._call("GET", f"/models/{quote(model, safe='')}/report", params=dict(params or {}),
                          timeout=timeout_s).text

    # ------------------------------------------------------------------------------------ users (the admin's)

    def create_user(self, name: str) -> CreatedUser:
        """A new user and its token (shown this once); needs the admin token."""
        return CreatedUser.model_validate(self._call("POST", "/users", json={"name": name}).json())

    def users(self) -> list[User]:
        return [User.model_validate(u) for u in self._call("GET", "/users").json()]

    def revoke_user(self, uid: str) -> User:
        return User.model_validate(self._call("POST", f"/users/{quote(uid, safe='')}/revoke").json())
