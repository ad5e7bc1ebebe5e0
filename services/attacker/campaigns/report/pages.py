"""A campaign's report page: its sections, in order, in one HTML document with the page's own style."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from markupsafe import Markup

from bbrange.attacker.campaigns.report import campaign_sections, query_attacks, transfer_sections
from bbrange.attacker.campaigns.report.section import Section, SectionBuilder
from bbrange.attacker.campaigns.report.templating import TEMPLATES, render
from bbrange.attacker.campaigns.report.view import CampaignView
from bbrange.attacker.campaigns.storage.records import utcnow

# The order of the page. A new attack's sections go beside the others (they are left out when a campaign's
# results carry nothing for them).
SECTIONS: tuple[SectionBuilder, ...] = (
    campaign_sections.attacked_section,
    campaign_sections.outcome_section,
    *transfer_sections.SECTIONS,
    *query_attacks.SECTIONS,
    campaign_sections.blue_side_section,
    campaign_sections.samples_section,
)


def _version() -> str:
    try:
        return version("blackbox-range")
    except PackageNotFoundError:
        return "unknown"


def page(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole document: style inlined, no script, nothing to fetch."""
    return str(render("page.html", title=title, subtitle=subtitle, sections=sections,
                      style=Markup((TEMPLATES / "report.css").read_text()), generated=utcnow(), version=_version()))


def render_campaign_report(view: CampaignView) -> str:
    record = view.record
    sections = [s for build in SECTIONS if (s := build(view)) is not None]
    title = f"Campaign {view.short_id}" + (f": {record.name}" if record.name else "")
    target = record.spec.get("target", {})
    subtitle = (f"{record.spec.get('crafting', {}).get('method', '').upper()} against "
                f"{target.get('model', '?')} at {target.get('oracle_url', '?')}: {record.state.value}")
    return page(title, subtitle, sections)
