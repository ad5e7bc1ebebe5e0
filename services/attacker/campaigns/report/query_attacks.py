"""The sections of query attacks (decision-based attacks that spend queries on each example, such as
HopSkipJump): none exists yet. A campaign whose results carry these fields gets them drawn:

    distortion_by_queries  {"norm": "l2", "queries": [...], "median": [...], "q1": [...], "q3": [...]}
                           the distortion of the examples after each number of queries: median and quartiles
    success_by_size        {"norm": "l2", "points": [{"size", "success_rate", "noise_rate"}, ...]}
                           success at each perturbation size, beside random noise of the same size

and `distortion_by_queries_other`, `success_by_size_other` of the same shapes: the same examples measured in the
other norm, drawn beside the first in the same section. The attack that adds them to `CampaignResults` (with
these models) needs no change here. The hybrid (a search started from a substitute's example) adds
`distortion_by_queries_amortised`: the same curve with each image's share of the substitute's labelling queries
(`amortised_labelling_queries_per_image`) added to its queries, drawn after the others.
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
    queries: list[float] = Field(min_length=1)  # integers, except where labelling queries are amortised
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
    amortised = view.results.get("amortised_labelling_queries_per_image")
    shifted = None if not isinstance(amortised, int | float) else (
        f"Each example's queries here include its share of the substitute's labelling queries, {amortised:,.1f} "
        "(all of them ÷ the images attacked), spent once to transfer the search's start.")
    keys = [("distortion_by_queries", None), ("distortion_by_queries_other", None)]
    curves = [(c, note) for c, note in ((_parsed(DistortionByQueries, view.results.get(key)), note)
                                        for key, note in [*keys, ("distortion_by_queries_amortised", shifted)])
              if c is not None]
    if not curves:
        return None
    drawn = []
    for curve, note in curves:
        series = [figures.Curve(f"median {curve.norm} distortion", curve.queries, curve.median, low=curve.q1,
                                high=curve.q3)]
        axis = "queries per example" + (", labelling amortised" if note else "")
        drawn.append((curve, trusted_svg(figures.curves(series, axis,
                                                        f"{curve.norm} distortion (median, interquartile range)",
                                                        rate=False, log_x=True)), note))
    return Section("distortion", "Distortion against queries", render("sections/distortion.html", curves=drawn))


def success_by_size_section(view: CampaignView) -> Section | None:
    norms: list[SuccessBySize] = [d for d in (_parsed(SuccessBySize, view.results.get(key))
                                              for key in ("success_by_size", "success_by_size_other")) if d is not None]
    if not norms:
        return None
    drawn = []
    for data in norms:
        points = sorted(data.points, key=lambda p: p.size)
        series = [figures.Curve("the attack", [p.size for p in points], [p.success_rate for p in points])]
        noisy = [p for p in points if p.noise_rate is not None]
        if noisy:
            series.append(figures.Curve("random noise of the same size", [p.size for p in noisy],
                                        [p.noise_rate or 0.0 for p in noisy], colour=figures.NOISE, dashed=True))
        plot = figures.curves(series, f"perturbation size ({data.norm})", "success rate")
        drawn.append((data, points, trusted_svg(plot)))
    return Section("success-by-size", "Success against perturbation size",
                   render("sections/success_by_size.html", norms=drawn))


SECTIONS = (distortion_section, success_by_size_section)
