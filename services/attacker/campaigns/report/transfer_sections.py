"""The sections of a transfer campaign (Papernot et al.): the substitute per ρ, the queries by phase, and
the transfer rate beside the noise baseline and the oracle's clean accuracy, at each ε it crafted."""

from __future__ import annotations

from bbrange.attacker.campaigns.report import figures
from bbrange.attacker.campaigns.report.section import Section
from bbrange.attacker.campaigns.report.templating import render, trusted_svg
from bbrange.attacker.campaigns.report.view import CampaignView

PHASES = ("agreement", "labelling", "attack", "evaluation", "baseline")


def substitute_section(view: CampaignView) -> Section | None:
    epochs = view.record.epochs
    if not epochs:
        return None
    plot = figures.agreement_by_rho([e.rho for e in epochs], [e.substitute_accuracy for e in epochs],
                                    [e.oracle_agreement for e in epochs], [e.labelling_queries for e in epochs])
    return Section("substitute", "The substitute, epoch by epoch",
                   render("sections/substitute.html", epochs=epochs, plot=trusted_svg(plot),
                          spec=view.record.spec.get("substitute", {})))


def queries_section(view: CampaignView) -> Section | None:
    q = view.record.queries
    if q.total == 0:
        return None
    phases = [(p, getattr(q, p)) for p in PHASES if getattr(q, p)]
    return Section("queries", "Queries by phase",
                   render("sections/queries.html", q=q, plot=trusted_svg(figures.queries_by_phase(phases))))


def transfer_section(view: CampaignView) -> Section | None:
    r = view.results
    if r.get("transfer_rate") is None:
        return None
    rows = [(label, r[key], colour) for label, key, colour in (
        ("oracle's accuracy on the clean images", "clean_accuracy", figures.CLEAN),
        ("noise of the same size (baseline)", "noise_rate", figures.NOISE),
        ("transfer: the attack's success", "transfer_rate", figures.ATTACK),
        ("transfer on the images the oracle labels correctly", "transfer_rate_on_correct", figures.ATTACK),
    ) if r.get(key) is not None]
    crafting = view.record.spec.get("crafting", {})
    return Section("transfer", "Transfer beside the noise baseline",
                   render("sections/transfer.html", r=r, crafting=crafting,
                          plot=trusted_svg(figures.rates_beside_noise(rows))))


def sizes_section(view: CampaignView) -> Section | None:
    sizes = view.results.get("by_eps") or []
    if not sizes:
        return None
    eps = [s["eps"] for s in sizes]
    order = sorted(range(len(eps)), key=lambda i: eps[i])
    crafting = view.record.spec.get("crafting", {})
    l2 = crafting.get("norm") == "l2"  # a gradient attack's norm; FGSM's and the others' sizes are L∞
    noise_words = "random noise of L2 length ε" if l2 else "random ±ε noise"
    series = [figures.Curve(f"transfer ({crafting.get('method', '?')} on the substitute)", [eps[i] for i in order],
                            [sizes[i]["transfer_rate"] for i in order])]
    noise = [i for i in order if sizes[i]["noise_rate"] is not None]
    if noise:
        series.append(figures.Curve(f"{noise_words} on the same images", [eps[i] for i in noise],
                                    [sizes[i]["noise_rate"] for i in noise], colour=figures.NOISE, dashed=True))
    plot = figures.curves(series, f"ε ({'L2' if l2 else 'L∞'} size of the perturbation)", "misclassified by the oracle")
    return Section("sizes", "Transfer against ε", render("sections/sizes.html", sizes=sizes, plot=trusted_svg(plot),
                                                         noise_words=noise_words))


SECTIONS = (substitute_section, queries_section, transfer_section, sizes_section)
