"""Campaign reports: one self-contained HTML page per campaign (its plots as inline SVG, its sample images
as data: URIs, no script, nothing fetched when it is viewed) and one per target model, gathering every
finished campaign against it. Drawn in the API process: matplotlib and Jinja2, never the engine or torch."""

from bbrange.attacker.campaigns.report.model_page import ModelCampaigns, render_model_report
from bbrange.attacker.campaigns.report.pages import render_campaign_report
from bbrange.attacker.campaigns.report.view import CampaignView

__all__ = ["CampaignView", "ModelCampaigns", "render_campaign_report", "render_model_report"]
