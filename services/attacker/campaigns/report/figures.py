"""The report's plots: matplotlib figures (the object API, no pyplot state, so routes may draw in threads)
written as SVG to be inlined in the page. Text stays text (smaller, searchable, printable).

Every artist that carries data gets an id starting with `data-` (matplotlib writes an artist's gid as the
id of its SVG group): the browser test checks each plot has such marks, and a reader's tools can find them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

matplotlib.use("Agg")  # never a GUI backend in a server process
matplotlib.rcParams.update({"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
                            "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3})

ATTACK = "#c0392b"
NOISE = "#7f8c8d"
SUBSTITUTE = "#2471a3"
CLEAN = "#27ae60"
PHASE_COLOURS = {"agreement": "#85c1e9", "labelling": "#2471a3", "attack": "#8e44ad", "evaluation": "#c0392b",
                 "baseline": "#95a5a6"}
_ids = count()


def _figure(height: float = 2.8) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(6.4, height), layout="constrained")
    return fig, fig.subplots()


def _mark(artist: object, name: str) -> None:
    artist.set_gid(f"data-{name}-{next(_ids)}")  # type: ignore[attr-defined]  # every matplotlib Artist has it


def to_svg(fig: Figure) -> str:
    """The figure as an inline <svg> element (no XML prolog or doctype: it lives inside the HTML page)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _percent_axis(ax: Axes, axis: str = "y") -> None:
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=0))


def agreement_by_rho(rhos: Sequence[int], accuracy: Sequence[float | None], agreement: Sequence[float | None],
                     queries: Sequence[int]) -> str:
    """The substitute's accuracy and its agreement with the oracle after each substitute epoch ρ."""
    fig, ax = _figure()
    for values, label, colour in ((agreement, "agreement with the oracle", SUBSTITUTE),
                                  (accuracy, "accuracy (true labels)", CLEAN)):
        xs = [r for r, v in zip(rhos, values, strict=True) if v is not None]
        ys = [v for v in values if v is not None]
        (line,) = ax.plot(xs, ys, marker="o", color=colour, label=label)
        _mark(line, "substitute")
    ax.set_xlabel("substitute epoch ρ (labelling queries so far)")
    ax.set_xticks(list(rhos), [f"{r}\n({q:,})" for r, q in zip(rhos, queries, strict=True)])
    ax.set_ylabel("on the evaluation images")
    ax.set_ylim(0, 1.02)
    _percent_axis(ax)
    ax.legend(loc="best")
    return to_svg(fig)


def queries_by_phase(phases: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars: the oracle queries each phase spent."""
    fig, ax = _figure(0.5 + 0.35 * len(phases))
    names = [p for p, _ in phases]
    bars = ax.barh(names, [n for _, n in phases], color=[PHASE_COLOURS.get(p, NOISE) for p in names])
    for bar in bars:
        _mark(bar, "queries")
    ax.bar_label(bars, labels=[f"{n:,}" for _, n in phases], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("oracle queries")
    ax.margins(x=0.15)
    return to_svg(fig)


def rates_beside_noise(rows: Sequence[tuple[str, float, str]]) -> str:
    """Horizontal bars of rates (label, rate, colour): the attack's success beside what noise alone does."""
    fig, ax = _figure(0.5 + 0.38 * len(rows))
    bars = ax.barh([r[0] for r in rows], [r[1] for r in rows], color=[r[2] for r in rows])
    for bar in bars:
        _mark(bar, "rate")
    ax.bar_label(bars, labels=[f"{r[1]:.1%}" for r in rows], padding=3)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    _percent_axis(ax, "x")
    return to_svg(fig)


@dataclass(frozen=True)
class Curve:
    """One series of a line plot; `low`/`high` draw a band (an interquartile range) around it."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    colour: str = ATTACK
    dashed: bool = False
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None


def curves(series: Sequence[Curve], xlabel: str, ylabel: str, *, rate: bool = True, log_x: bool = False) -> str:
    """Lines with markers, one per series (success against size, distortion against queries, ...)."""
    fig, ax = _figure(3.0)
    for c in series:
        if c.low is not None and c.high is not None:
            band = ax.fill_between(c.x, c.low, c.high, color=c.colour, alpha=0.2, linewidth=0)
            _mark(band, "band")
        (line,) = ax.plot(c.x, c.y, marker="o", color=c.colour, label=c.label, linestyle="--" if c.dashed else "-")
        _mark(line, "curve")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_x:
        ax.set_xscale("log")
    if rate:
        ax.set_ylim(0, 1.02)
        _percent_axis(ax)
    if len(series) > 1 or series[0].label:
        ax.legend(loc="best", fontsize=8)
    return to_svg(fig)


@dataclass(frozen=True)
class Span:
    """A stretch of the query timeline: `queries` queries of one phase (`label` says which part of it)."""

    phase: str
    label: str
    queries: int


def query_timeline(spans: Sequence[Span], flagged_at: int | None, flag_label: str) -> str:
    """The campaign's queries in the order it sent them, one coloured stretch per phase, and where the
    oracle's detector flagged it."""
    fig, ax = _figure(1.9)
    start = 0
    for span in spans:
        if span.queries <= 0:
            continue
        (bar,) = ax.barh([0], [span.queries], left=[start], height=0.6, color=PHASE_COLOURS.get(span.phase, NOISE),
                         edgecolor="white", linewidth=0.5)
        _mark(bar, "timeline")
        start += span.queries
    if flagged_at is not None:
        flag = ax.axvline(flagged_at, color="black", linewidth=2)
        _mark(flag, "flag")
        ax.annotate(flag_label, (flagged_at, 0.42), xytext=(4, 0), textcoords="offset points", fontsize=8,
                    va="bottom")
    handles = [Patch(color=PHASE_COLOURS[p], label=p) for p in PHASE_COLOURS
               if any(s.phase == p and s.queries > 0 for s in spans)]
    fig.legend(handles=handles, loc="outside lower center", ncols=max(len(handles), 1), frameon=False)
    ax.set_yticks([])
    ax.set_ylim(-0.5, 0.9)
    ax.set_xlim(0, max(start, flagged_at or 0, 1) * 1.02)
    ax.set_xlabel("oracle queries, in the order they were sent")
    ax.grid(False)
    return to_svg(fig)


def scatter_by_queries(points: Sequence[tuple[str, int, float, str]], xlabel: str, ylabel: str) -> str:
    """One labelled point per (label, queries, rate, colour): what a number of labels bought."""
    fig, ax = _figure(3.0)
    for label, queries, value, colour in points:
        (mark,) = ax.plot([queries], [value], marker="o", markersize=7, color=colour, linestyle="none")
        _mark(mark, "point")
        ax.annotate(label, (queries, value), xytext=(5, 4), textcoords="offset points", fontsize=7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    ax.margins(x=0.15)
    _percent_axis(ax)
    return to_svg(fig)
