"""The sections of query attacks (decision-based attacks that spend queries on each example, such as
HopSkipJump): none exists yet. A campaign whose results carry these fields gets them drawn:

    distortion_by_queries  {"norm": "l2", "queries": [...], "median": [...], "q1": [...], "q3": [...]}
                           the distortion of the examples after each number of queries: median and quartiles
    success_by_size        {"norm": "l2", "points": [{"size", "success_rate", "noise_rate"}, ...]}
                           success at each perturbation size, beside random noise of the same size

so the attack that adds them to `CampaignResults` (with these models) needs no change here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from bbrange.attacker.campaigns.report import figures
from bbrange.attacker.campaigns.report.section import Section
from bbrange.attacker.campaigns.report.templating import render, trusted_svg
from bbrange.attacker.campaigns.report.view import CampaignView


class DistortionByQueries(BaseModel):
    norm: str = "l2"
    queries: list[int] = Field(min_length=1)
    median: list[float]
    q1: list[float]
    q3: list[float]

    @model_validator(mode="after")
    def _aligned(self) -> DistortionByQueries:
        if not len(self.queries) == len(self.median) == len(self.q1) == len(self.q3):
            raise ValueError("queries, median, q1 and q3 must have one value each per point")
        return self


class SuccessAtSize(BaseModel):
    size: float
    success_rate: float
    noise_rate: float | None = None


class SuccessBySize(BaseModel):
    norm: str = "l2"
    points: list[SuccessAtSize] = Field(min_length=1)


def _parsed(model: type[BaseModel], data: Any) -> Any:
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None  # a shape this report does not know is left out rather than drawn wrong


def distortion_section(view: CampaignView) -> Section | None:
    curve: DistortionByQueries | None = _parsed(DistortionByQueries, view.results.get("distortion_by_queries"))
    if curve is None:
        return None
    series = [figures.Curve(f"median {curve.norm} distortion", curve.queries, curve.median, low=curve.q1,
                            high=curve.q3)]
    plot = figures.curves(series, "queries per example", f"{curve.norm} distortion (median, interquartile range)",
                          rate=False, log_x=True)
    return Section("distortion", "Distortion against queries",
                   render("sections/distortion.html", curve=curve, plot=trusted_svg(plot)))


def success_by_size_section(view: CampaignView) -> Section | None:
    data: SuccessBySize | None = _parsed(SuccessBySize, view.results.get("success_by_size"))
    if data is None:
        return None
    points = sorted(data.points, key=lambda p: p.size)
    series = [figures.Curve("the attack", [p.size for p in points], [p.success_rate for p in points])]
    noisy = [p for p in points if p.noise_rate is not None]
    if noisy:
        series.append(figures.Curve("random noise of the same size", [p.size for p in noisy],
                                    [p.noise_rate or 0.0 for p in noisy], colour=figures.NOISE, dashed=True))
    plot = figures.curves(series, f"perturbation size ({data.norm})", "success rate")
    return Section("success-by-size", "Success against perturbation size",
                   render("sections/success_by_size.html", data=data, points=points, plot=trusted_svg(plot)))


SECTIONS = (distortion_section, success_by_size_section)
