"""The substitute in a campaign spec: its architecture, or an ensemble of several trained on the same labels;
Algorithm 1's ρ, λ and refinements; how each epoch trains it, adversarially or not. Bad combinations are refused
with the reason before any worker is involved."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bbrange.attacker.engine.vocabulary import (  # torch-free
    DEFAULT_STEP_SIZE,
    MAX_ENSEMBLE,
    AugmentWith,
    SubstitutePresetName,
    TrainingAttackMethod,
)

_STRICT = ConfigDict(strict=True, extra="forbid")
MAX_TRAINING_STEPS = 100  # PGD steps per training batch: each multiplies the substitute's training time


class Training(BaseModel):
    """How each substitute epoch trains F (the paper's cleverhans tutorial: 10 epochs, batch 128, Adam 1e-3)."""

    model_config = _STRICT
    epochs: int = Field(10, ge=1, le=100)
    batch_size: int = Field(128, ge=1, le=4096)
    learning_rate: float = Field(1e-3, gt=0, le=1)


class AdversarialTraining(BaseModel):
    """Each substitute trained on the labelled set and on adversarial examples of itself (with the oracle's labels):
    FGSM (Goodfellow et al., 2015) or PGD from a random start (Madry et al., 2018), in every training batch."""

    model_config = _STRICT
    method: TrainingAttackMethod = Field("fgsm", description="fgsm or pgd")
    eps: float = Field(0.3, gt=0, le=1, description="ε: the L∞ size of the training examples")
    steps: int | None = Field(None, ge=1, le=MAX_TRAINING_STEPS, description="PGD only: steps per example (unset: 10)")
    step_size: float | None = Field(None, gt=0, le=1, description="PGD only: α (unset: 2.5·ε/steps)")
    clean_weight: float = Field(0.5, ge=0, lt=1, description="The clean images' share of the loss: 0.5 (Goodfellow "
                                                             "et al.'s half and half), 0 (Madry et al.'s adversarial "
                                                             "examples only)")

    @model_validator(mode="after")
    def _steps_are_pgd_s(self) -> AdversarialTraining:
        if self.method == "fgsm" and (self.steps is not None or self.step_size is not None):
            raise ValueError("steps and step_size are PGD's: FGSM takes one step of ε; use method pgd")
        return self


class Substitute(BaseModel):
    model_config = _STRICT
    preset: SubstitutePresetName = Field("papernot-mnist",
                                         description="Substitute architecture; `bbrange attack presets` lists them")
    presets: list[SubstitutePresetName] | None = Field(
        None, min_length=2, max_length=MAX_ENSEMBLE,
        description=f"An ensemble instead of one substitute: 2 to {MAX_ENSEMBLE} presets (a preset may repeat: each "
                    "member has its own seed), all trained on the same labelled set at no extra query; the attack "
                    "crafts on their averaged logits (Liu et al., ICLR 2017)")
    augment_with: AugmentWith = Field(
        "first", description="An ensemble: whose Jacobian chooses the points labelled next, the first preset's "
                             "(the set a lone substitute of it would label) or the ensemble's averaged logits'")
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
    adversarial_training: AdversarialTraining | None = Field(
        None, description="Train each substitute adversarially too (unset: on the labelled set alone)")

    @field_validator("lam")
    @classmethod
    def _moves(cls, value: float) -> float:
        if value == 0:
            raise ValueError("λ = 0 would add copies of the points already labelled; use e.g. -0.1 or 0.1")
        return value

    @model_validator(mode="after")
    def _one_or_an_ensemble(self) -> Substitute:
        if self.presets is None:
            if self.augment_with == "ensemble":
                raise ValueError("augment_with 'ensemble' needs an ensemble: name 2 or more presets in `presets`")
            return self
        if "preset" in self.model_fields_set and self.preset != self.presets[0]:
            raise ValueError("give preset (one substitute) or presets (an ensemble), not both")
        self.preset = self.presets[0]  # as stored: the ensemble's first member, which a stored spec validates with
        return self

    @property
    def members(self) -> list[SubstitutePresetName]:
        """Every substitute's preset, the first first."""
        return list(self.presets) if self.presets is not None else [self.preset]
