"""The campaign spec: what `POST /attacks` accepts, validated so that a mistake is refused with a message
a person understands before any worker or oracle is involved."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
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
from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.engine.vocabulary import DEFAULT_STEP_SIZE, SubstitutePresetName  # torch-free

Dataset = Literal["mnist", "gtsrb", "custom"]

_STRICT = ConfigDict(strict=True, extra="forbid")


class Training(BaseModel):
    """How each substitute epoch trains F (the paper's cleverhans tutorial: 10 epochs, batch 128, Adam 1e-3)."""

    model_config = _STRICT
    epochs: int = Field(10, ge=1, le=100)
    batch_size: int = Field(128, ge=1, le=4096)
    learning_rate: float = Field(1e-3, gt=0, le=1)


class Substitute(BaseModel):
    model_config = _STRICT
    preset: SubstitutePresetName = Field("papernot-mnist",
                                         description="Substitute architecture; `bbrange attack presets` lists them")
    rho: int = Field(6, ge=0, le=12, description="ρ_max: substitute epochs (the last one trains on |S0|·2^ρ points "
                                                 "without reservoir sampling)")
    lam: float = Field(DEFAULT_STEP_SIZE, ge=-1, le=1,
                       description="λ: Jacobian augmentation step size, signed: negative steps towards the oracle's "
                                   "decision boundary (as the authors' reference code), +0.1 is the paper as printed")
    periodic_step: bool = Field(False, description="λ_ρ = λ·(−1)^⌊ρ/τ⌋")
    tau: int = Field(3, ge=1, le=100, description="τ: period of the step-size sign flip")
    reservoir: bool = Field(False, description="From ρ ≥ σ on, augment only κ of the newest points")
    sigma: int = Field(3, ge=0, le=100, description="σ: first substitute epoch with reservoir sampling")
    kappa: int = Field(400, ge=1, le=1_000_000, description="κ: points augmented per epoch with reservoir sampling")
    training: Training = Field(default_factory=Training)

    @field_validator("lam")
    @classmethod
    def _moves(cls, value: float) -> float:
        if value == 0:
            raise ValueError("λ = 0 would add copies of the points already labelled; use e.g. -0.1 or 0.1")
        return value


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
