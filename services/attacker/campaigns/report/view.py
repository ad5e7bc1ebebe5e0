"""What a campaign report is drawn from: the record, its samples if any, and where the API serves them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bbrange.attacker.campaigns.storage.records import CampaignRecord
from bbrange.attacker.campaigns.storage.samples import SampleSet


@dataclass(frozen=True)
class CampaignView:
    record: CampaignRecord
    samples: SampleSet | None
    api_url: str  # the attacker API the report links to (its samples, the rerun command)
    # The results as plain data: a section reads what it draws from here, so that an attack whose results
    # carry new fields gets its section by adding one (see query_attacks.py), nothing else.
    results: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, record: CampaignRecord, samples: SampleSet | None, api_url: str) -> CampaignView:
        results = record.results.model_dump(mode="json") if record.results is not None else {}
        return cls(record, samples, api_url.rstrip("/"), results)

    @property
    def short_id(self) -> str:
        return self.record.id[:8]

    def url(self, suffix: str) -> str:
        return f"{self.api_url}/attacks/{self.record.id}/{suffix}"

    @property
    def class_names(self) -> list[str] | None:
        card = self.record.target_model or {}
        names = card.get("class_names")
        domain = self.record.spec.get("domain") or {}
        names = names or domain.get("class_names")
        return [str(n) for n in names] if isinstance(names, list) else None

    def class_name(self, label: int) -> str:
        names = self.class_names
        return names[label] if names and 0 <= label < len(names) else str(label)
