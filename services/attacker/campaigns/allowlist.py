"""Which oracle URLs a campaign may target: the service fetches URLs its users give it, so each one is
checked against an operator's allowlist of origins before the API accepts it and again before a worker
connects (a spec stored before the allowlist was narrowed must not slip through)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bbrange.attacker.campaigns.errors import TargetNotAllowed

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int | None  # None: any port of that host

    @classmethod
    def parse(cls, text: str, *, port_required: bool = False) -> Origin:
        parts = urlsplit(text.strip())
        if parts.scheme not in _DEFAULT_PORTS:
            raise TargetNotAllowed(f"{text!r}: only http and https URLs are supported")
        if not parts.hostname:
            raise TargetNotAllowed(f"{text!r} has no host")
        if parts.username or parts.password:
            raise TargetNotAllowed(f"{text!r}: credentials in the URL are not accepted; put the API key in target.api_key")
        try:
            port = parts.port
        except ValueError:
            raise TargetNotAllowed(f"{text!r} has an invalid port") from None
        if port is None and port_required:
            port = _DEFAULT_PORTS[parts.scheme]
        return cls(parts.scheme, parts.hostname.lower(), port)

    def admits(self, other: Origin) -> bool:
        return (self.scheme, self.host) == (other.scheme, other.host) and self.port in (None, other.port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + ("" if self.port is None else f":{self.port}")


class OracleAllowlist:
    def __init__(self, entries: list[str]) -> None:
        self.origins = [Origin.parse(e) for e in entries]

    def check(self, url: str) -> None:
        """Raise TargetNotAllowed unless `url`'s scheme, host and port match an allowed origin.

        Hosts are compared as written, not resolved: an operator lists the names (or addresses) the
        oracles are reached by, and redirects are never followed by the oracle client.
        """
        target = Origin.parse(url, port_required=True)
        if not any(o.admits(target) for o in self.origins):
            allowed = ", ".join(str(o) for o in self.origins) or "(nothing)"
            raise TargetNotAllowed(
                f"oracle URL {url!r} is not on this service's allowlist ({allowed}); "
                "an operator can extend BBRANGE_ATTACK_ORACLE_ALLOWLIST"
            )
