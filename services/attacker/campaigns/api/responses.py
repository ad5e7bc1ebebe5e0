"""The attacker API's answers (the campaign record itself is in records.py, the spec in spec.py)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bbrange.attacker.campaigns.storage.records import CampaignRecord, CampaignState
from bbrange.attacker.campaigns.storage.users import User


class CampaignAccepted(BaseModel):
    id: str
    state: CampaignState
    location: str = Field(description="Where to follow the campaign")


class CampaignPage(BaseModel):
    items: list[CampaignRecord]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class SourceImage(BaseModel):
    dataset: str
    split: str
    index: int = Field(description="Index of the clean image in that dataset split")


class Sample(BaseModel):
    index: int = Field(description="Position of the sample in this campaign (0-based)")
    source: SourceImage
    adversarial_png: str = Field(description="The adversarial image as an 8-bit PNG, base64 (the exact floats are "
                                             "in samples.npz)")
    true_label: int
    oracle_label_before: int = Field(description="The oracle's label of the clean image")
    oracle_label_after: int | None = Field(description="The oracle's label of the adversarial image; null where a "
                                                       "query attack kept only that it was adversarial")
    target: int | None = Field(description="The JSMA target class; null for untargeted FGSM")
    success: bool = Field(description="FGSM: the oracle's label differs from the true label; JSMA: it is the target")
    l0: float = Field(description="Fraction of features changed")
    l2: float
    linf: float
    queries: int | None = Field(None, description="A query attack: the oracle queries this example cost; null for a "
                                                  "transfer attack")


class SamplePage(BaseModel):
    campaign_id: str
    method: str | None = Field(None, description="The crafting method the samples were made with")
    crafting: str | None = Field(None, description="That method and its settings in a few words")
    items: list[Sample]
    total: int
    offset: int
    limit: int
    next_offset: int | None


class CreatedUser(BaseModel):
    user: User
    token: str = Field(description="The user's bearer token; shown this once, only its digest is kept")
