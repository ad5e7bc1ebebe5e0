"""A report is a list of sections; each is built from the campaign view, or left out when the campaign
has nothing for it. A new kind of attack adds a builder to `SECTIONS` (and its template), nothing else."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup

from bbrange.attacker.campaigns.report.view import CampaignView


@dataclass(frozen=True)
class Section:
    key: str  # the HTML id of the section (and of its entry in the page's contents)
    title: str
    body: Markup


SectionBuilder = Callable[[CampaignView], Section | None]
