"""The campaign spec: what `POST /attacks` accepts, validated so that a mistake is refused with a message
a person understands before any worker or oracle is involved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from bbrange.attacker.campaigns.spec.attacks.registry import CraftingSpec, crafting_type, default_crafting
from bbrange.attacker.campaigns.spec.data import (
    DatasetInitialSet,
    Domain,
    Evaluation,
    FileImages,
    FileInitialSet,
    InitialSet,
    Split,
    UploadedImages,
)
from bbrange.attacker.campaigns.spec.data import (
    UploadedInitialSet as UploadedInitialSet,  # re-exported: the routes and the runner import it from here
)
from bbrange.attacker.campaigns.spec.substitute import Substitute
from bbrange.attacker.campaigns.spec.target import Target

Dataset = Literal["mnist", "gtsrb", "custom"]

_STRICT = ConfigDict(strict=True, extra="forbid")


# The attacks a spec may name, discriminated by `method`: the built-in ones and the plug-ins (spec/attacks/).
if TYPE_CHECKING:
    Crafting = CraftingSpec
else:
    Crafting = crafting_type()


class CampaignSpec(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid",
        json_schema_extra={"examples": [
            {
                "target": {"oracle_url": "http://127.0.0.1:8000", "model": "mnist", "api_key": "<oracle API key>"},
                "dataset": "mnist",
                "initial_set": {"kind": "dataset", "split": "test", "offset": 0, "size": 150},
                "substitute": {"preset": "papernot-mnist", "rho": 6, "lam": -0.1},
                "crafting": {"method": "fgsm", "eps": 0.3},
                "evaluation": {"split": "test", "size": 9850},
                "query_budget": 30000,
                "seed": 0,
            },
            {
                "target": {"oracle_url": "http://127.0.0.1:8000", "model": "mnist", "api_key": "<oracle API key>"},
                "dataset": "mnist",
                "initial_set": {"kind": "dataset", "size": 100},
                "substitute": {"preset": "papernot-mnist", "rho": 6, "periodic_step": True, "tau": 3,
                               "reservoir": True, "sigma": 3, "kappa": 400},
                "crafting": {"method": "jsma", "theta": 1.0, "upsilon": 0.145, "target": "random"},
                "evaluation": {"size": 200},
            },
        ]},
    )
    name: str | None = Field(None, max_length=200, description="A label for people")
    target: Target
    dataset: Dataset = Field(description="The input domain: a preset (mnist, gtsrb: S0 and the evaluation images can "
                             "come from it) or custom (declared in `domain`, images uploaded or on the data volume)")
    domain: Domain | None = Field(None, description="dataset = custom: shape, classes and value range of the images")
    initial_set: InitialSet = Field(default_factory=DatasetInitialSet)
    substitute: Substitute = Field(default_factory=Substitute)
    crafting: Crafting = Field(default_factory=default_crafting)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    query_budget: int | None = Field(None, ge=1, le=10**9, description="Most oracle queries this campaign may spend, "
                                     "all phases together (the oracle's own budget for the key applies as well)")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    camouflage: Camouflage = Field(default_factory=lambda: Camouflage())

    @model_validator(mode="after")
    def _own_data_is_complete(self) -> CampaignSpec:
        if self.dataset == "custom":
            if self.domain is None:
                raise ValueError("dataset custom needs `domain` (input_shape, num_classes, value_range)")
            if isinstance(self.initial_set, DatasetInitialSet):
                raise ValueError("dataset custom has no images of its own: upload S0 or name a file for it")
            if self.evaluation.source is None:
                raise ValueError("dataset custom needs evaluation.source: labelled images uploaded or on the data volume")
        elif self.domain is not None:
            raise ValueError(f"the {self.dataset} preset defines its own domain; `domain` is for dataset custom")
        return self

    @property
    def value_range(self) -> tuple[float, float]:
        return self.domain.range if self.domain is not None else (0.0, 1.0)

    def files(self) -> list[str]:
        """Names of data-volume files the campaign reads."""
        names = [self.initial_set.name] if isinstance(self.initial_set, FileInitialSet) else []
        if isinstance(self.evaluation.source, FileImages):
            names.append(self.evaluation.source.name)
        return names

    def public(self) -> dict[str, Any]:
        """The spec as shown back: secrets masked, uploads as the shape the service decoded (never their data)."""
        data = self.model_dump(mode="json")
        if isinstance(self.initial_set, UploadedInitialSet):
            data["initial_set"] = {"kind": "upload", "shape": self.initial_set.shape}
        if isinstance(self.evaluation.source, UploadedImages):
            data["evaluation"]["source"] = {"kind": "upload", "shape": self.evaluation.source.shape}
        return data


class Camouflage(BaseModel):
    """The attacker's answer to the oracle's extraction detector: natural images of the dataset mixed into
    every labelling request, so that the distances between the key's queries look natural. They are charged
    and counted as labelling queries (the results' camouflage cost is `ratio` per attack query)."""

    model_config = _STRICT
    ratio: float = Field(0.0, ge=0, le=20, description="Natural images sent per attack query (0: none)")
    split: Split = Field("train", description="Where the natural images come from (S0 and the evaluation images "
                                              "are not used)")


CampaignSpec.model_rebuild()
