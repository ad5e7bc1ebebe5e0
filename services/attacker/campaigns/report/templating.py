"""The report's HTML: Jinja2 templates beside this module, autoescaped, and the filters they share."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"


def percent(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def signed_percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2%}"


def number(value: int | float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.3g}"


def data_uri(content: bytes, media_type: str) -> str:
    """Content inlined in the page, so the report is one file that needs nothing else to be read."""
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_env.filters.update(percent=percent, signed_percent=signed_percent, number=number)


def render(template: str, **context: Any) -> Markup:
    """A template rendered to markup that other templates include as it is."""
    return Markup(_env.get_template(template).render(**context))


def trusted_svg(svg: str) -> Markup:
    """An SVG matplotlib wrote (its text escaped by matplotlib): inlined as it is."""
    return Markup(svg)
