"""Which oracle URLs a campaign may target: the service fetches URLs its users give it, so each one is
checked against an operator's allowlist of origins before the API accepts it and again before a worker
connects (a spec stored before the allowlist was narrowed must not slip through).

The policy cannot be bent by the URL: an allowlist entry is an exact origin with an explicit port (an entry
without a port would admit every service of that host: Redis on 6379, ssh on 22), and an oracle URL is an
origin only: a path, query, fragment or credentials are refused with the reason, so nothing of the caller's
choosing is ever put in front of the oracle's own paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bbrange.attacker.campaigns.errors import TargetNotAllowed

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, port_required: bool = False) -> Origin:
        """An origin `scheme://host[:port]`; TargetNotAllowed with the reason for anything else.

        port_required: the port must be written out (allowlist entries); otherwise the scheme's default applies."""
        raw = text.strip()
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
            # urlsplit drops tabs and newlines without a word, and httpx refuses what is left only later
            raise TargetNotAllowed(f"{text!r}: control characters and spaces are not accepted in a URL")
        parts = urlsplit(raw)
        if parts.scheme not in _DEFAULT_PORTS:
            raise TargetNotAllowed(f"{text!r}: only http and https URLs are supported")
        if not parts.hostname:
            raise TargetNotAllowed(f"{text!r} has no host")
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            raise TargetNotAllowed(f"{text!r}: credentials in the URL are not accepted; put the API key in target.api_key")
        if parts.path not in ("", "/"):
            raise TargetNotAllowed(f"{text!r}: a path is not accepted; give the oracle's origin only "
                                   "(scheme://host:port), its API paths are the service's to choose (an API "
                                   "behind a path prefix: protocol http-json, whose `path` may hold it)")
        if parts.query or raw.rstrip("/").endswith("?"):
            raise TargetNotAllowed(f"{text!r}: a query string is not accepted; give the oracle's origin only")
        if parts.fragment or "#" in raw:
            raise TargetNotAllowed(f"{text!r}: a fragment is not accepted; give the oracle's origin only")
        try:
            port = parts.port
        except ValueError:
            raise TargetNotAllowed(f"{text!r} has an invalid port") from None
        if port is None:
            if port_required:
                raise TargetNotAllowed(f"{text!r}: an allowlist entry needs an explicit port "
                                       f"(e.g. {parts.scheme}://{parts.netloc}:8000); a host alone would admit "
                                       "every service on it")
            port = _DEFAULT_PORTS[parts.scheme]
        return cls(parts.scheme, parts.hostname.lower(), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class OracleAllowlist:
    def __init__(self, entries: list[str]) -> None:
        self.origins = [Origin.parse(e, port_required=True) for e in entries]

    def check(self, url: str) -> None:
        """Raise TargetNotAllowed unless `url` is exactly one of the allowed origins (scheme, host and port).

        Hosts are compared as written, not resolved: an operator lists the names (or addresses) the
        oracles are reached by, and redirects are never followed by the oracle client.
        """
        target = Origin.parse(url)
        if target not in self.origins:
            allowed = ", ".join(str(o) for o in self.origins) or "(nothing)"
            raise TargetNotAllowed(
                f"oracle URL {url!r} is not on this service's allowlist ({allowed}); "
                "an operator can extend BBRANGE_ATTACK_ORACLE_ALLOWLIST"
            )
