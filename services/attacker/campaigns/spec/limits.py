"""What one campaign may ask of the machine: the points its substitute is trained on and its evaluation size,
checked when the spec is submitted (422 with the limit in the message) so that no worker is handed a
campaign it cannot hold in memory; the size of its stored spec; and what one user may keep: so many campaigns
queued or running at once (429), so many campaigns in all (the oldest finished ones are deleted beyond)."""

from __future__ import annotations

from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.attacks.query import QueryCraftingSpec
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.data import DatasetInitialSet
from bbrange.attacker.campaigns.storage.campaign_store import CampaignStore
from bbrange.attacker.campaigns.storage.samples import SampleStore
from bbrange.attacker.engine.vocabulary import epoch_set_sizes  # torch-free
from bbrange.shared.http_errors import ApiError


def check_spec_limits(spec: CampaignSpec, s0_size: int, settings: AttackerSettings) -> None:
    """Refuse (422 spec_too_large) a campaign larger than this service accepts; s0_size is |S0| as submitted."""
    if isinstance(spec.crafting, QueryCraftingSpec):
        _check_query_budget(spec, spec.crafting, settings)
    if not isinstance(spec.crafting, QueryCraftingSpec) or spec.crafting.trains_substitute:
        _check_substitute(spec, s0_size, settings)
    if spec.evaluation.size > settings.max_evaluation_size:
        raise ApiError(422, "spec_too_large",
                       f"an evaluation of {spec.evaluation.size:,} images exceeds this service's limit of "
                       f"{settings.max_evaluation_size:,} (BBRANGE_ATTACK_MAX_EVALUATION_SIZE)",
                       {"evaluation_size": spec.evaluation.size, "limit": settings.max_evaluation_size})


def _check_query_budget(spec: CampaignSpec, crafting: QueryCraftingSpec, settings: AttackerSettings) -> None:
    """A query attack plans max_queries_per_image for every image, after one agreement label each: refused when
    that cannot fit the campaign's query_budget (the search would stop half way by design) or the service's cap."""
    size = spec.evaluation.size
    planned = crafting.max_queries_per_image * size
    if planned > settings.max_attack_queries:
        raise ApiError(422, "spec_too_large",
                       f"{crafting.max_queries_per_image:,} queries per image × {size:,} images = {planned:,} attack "
                       f"queries; this service accepts at most {settings.max_attack_queries:,} per campaign "
                       "(BBRANGE_ATTACK_MAX_ATTACK_QUERIES): lower max_queries_per_image or the evaluation size",
                       {"attack_queries": planned, "limit": settings.max_attack_queries})
    if spec.query_budget is not None and planned + size > spec.query_budget:
        raise ApiError(422, "budget_too_small",
                       f"query_budget {spec.query_budget:,} cannot hold the agreement labels ({size:,}) and "
                       f"{crafting.max_queries_per_image:,} queries per image × {size:,} images ({planned:,}): raise "
                       "query_budget to at least "
                       f"{planned + size:,} (the noise baseline needs more), or lower max_queries_per_image",
                       {"needed": planned + size, "query_budget": spec.query_budget})


def _check_substitute(spec: CampaignSpec, s0_size: int, settings: AttackerSettings) -> None:
    sub = spec.substitute
    points = epoch_set_sizes(s0_size, sub.rho, sub.reservoir, sub.sigma, sub.kappa)[-1]
    if points > settings.max_substitute_points:
        raise ApiError(422, "spec_too_large",
                       f"the substitute would be trained on {points:,} points (|S0| = {s0_size:,}, ρ = {sub.rho}"
                       f"{', reservoir' if sub.reservoir else ''}); this service accepts at most "
                       f"{settings.max_substitute_points:,} (BBRANGE_ATTACK_MAX_SUBSTITUTE_POINTS): lower ρ or |S0|, "
                       "or use reservoir sampling", {"points": points, "limit": settings.max_substitute_points})


def initial_set_size(spec: CampaignSpec, uploaded_images: int | None) -> int:
    return spec.initial_set.size if isinstance(spec.initial_set, DatasetInitialSet) else int(uploaded_images or 0)


def check_spec_size(stored_spec_json: str, settings: AttackerSettings) -> None:
    """Refuse (422 spec_too_large) a spec whose stored form (uploads by their shape) exceeds the limit: it stays
    in Redis as long as its campaign's record."""
    size = len(stored_spec_json.encode())
    if size > settings.max_spec_bytes:
        raise ApiError(422, "spec_too_large", f"the spec takes {size:,} bytes as stored; this service keeps at most "
                       f"{settings.max_spec_bytes:,} (BBRANGE_ATTACK_MAX_SPEC_BYTES): shorten its templates or names",
                       {"spec_bytes": size, "limit": settings.max_spec_bytes})


def too_many_active(active: int, settings: AttackerSettings) -> ApiError:
    limit = settings.max_active_campaigns_per_user
    return ApiError(429, "too_many_active_campaigns",
                    f"you have {active} queued or running campaigns; this service runs at most {limit} per user at "
                    "once (BBRANGE_ATTACK_MAX_ACTIVE_CAMPAIGNS_PER_USER): wait for one to finish, or cancel one",
                    {"active": active, "limit": limit})


def check_active(store: CampaignStore, owner: str, settings: AttackerSettings) -> None:
    """429 before any work when the owner is already at its cap (CampaignStore.create checks it again, atomically)."""
    active = store.active_count(owner)
    if active >= settings.max_active_campaigns_per_user:
        raise too_many_active(active, settings)


def keep_within_quota(store: CampaignStore, samples: SampleStore, owner: str, settings: AttackerSettings) -> None:
    """Delete the owner's oldest finished campaigns, records and files, beyond the campaigns kept per user."""
    deleted, _ = store.delete_oldest_finished(owner, settings.max_campaigns_per_user)
    for cid in deleted:
        samples.remove(cid)
