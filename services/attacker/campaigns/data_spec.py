"""The images of a campaign spec: its input domain, S0 and the labelled evaluation set, from a dataset
preset (MNIST, GTSRB), an upload, or a file on the operator's data volume."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bbrange.attacker.campaigns.user_data import UserDataError, decode_npy_upload, decode_npz_upload

_STRICT = ConfigDict(strict=True, extra="forbid")
Split = Literal["train", "test"]
FileName = Annotated[str, Field(min_length=5, max_length=200, pattern=r"^[A-Za-z0-9_.-]+\.npz$")]


class Domain(BaseModel):
    """What the images are, for a campaign on its own data (dataset = "custom")."""

    model_config = _STRICT
    input_shape: list[Annotated[int, Field(ge=1, le=4096)]] = Field(min_length=3, max_length=3,
                                                                    description="[C, H, W]")
    num_classes: int = Field(ge=2, le=100_000)
    class_names: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, max_length=10_000, description="One name per class (at most 10,000, 64 characters each), for pictures "
                                             "and reports")
    value_range: list[float] = Field([0.0, 1.0], min_length=2, max_length=2,
                                     description="[low, high] of float arrays (uint8 arrays are read as 0..255)")

    @model_validator(mode="after")
    def _consistent(self) -> Domain:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        if self.value_range[0] >= self.value_range[1]:
            raise ValueError("value_range must be [low, high] with low < high")
        return self

    @property
    def range(self) -> tuple[float, float]:
        return self.value_range[0], self.value_range[1]


class DatasetInitialSet(BaseModel):
    """S0 = `size` consecutive images of a split, from `offset` on (true labels are never sent anywhere)."""

    model_config = _STRICT
    kind: Literal["dataset"] = "dataset"
    split: Split = "test"
    offset: int = Field(0, ge=0, le=1_000_000)
    size: int = Field(150, ge=1, le=10_000, description="|S0|")


class UploadedInitialSet(BaseModel):
    """S0 uploaded by the caller: a base64 .npy array (N, C, H, W), float32 in the domain's range or uint8."""

    model_config = _STRICT
    kind: Literal["upload"]
    npy_base64: str = Field(description="base64 of a .npy file; labels are not needed, the oracle provides them",
                            repr=False)

    def array(self, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
        return decode_npy_upload(self.npy_base64, value_range)

    @field_validator("npy_base64")
    @classmethod
    def _valid_array(cls, value: str) -> str:
        try:
            array = decode_npy_upload(value, None)
        except UserDataError as e:
            raise ValueError(str(e)) from None
        if len(array) > 10_000:
            raise ValueError(f"the uploaded initial set has {len(array)} images; at most 10,000 are accepted")
        return value


class FileInitialSet(BaseModel):
    """S0 from an .npz on the data volume (its array `x`): `size` images from `offset` on."""

    model_config = _STRICT
    kind: Literal["file"]
    name: FileName
    offset: int = Field(0, ge=0, le=1_000_000)
    size: int = Field(150, ge=1, le=10_000)


InitialSet = Annotated[DatasetInitialSet | UploadedInitialSet | FileInitialSet, Field(discriminator="kind")]


class UploadedImages(BaseModel):
    """Labelled evaluation images uploaded by the caller: base64 of an .npz with `x` (N, C, H, W) and `y`."""

    model_config = _STRICT
    kind: Literal["upload"]
    npz_base64: str = Field(repr=False)

    def arrays(self, value_range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        x, y = decode_npz_upload(self.npz_base64, value_range, labelled=True)
        assert y is not None
        return x, y

    @field_validator("npz_base64")
    @classmethod
    def _valid(cls, value: str) -> str:
        try:
            decode_npz_upload(value, None, labelled=True)
        except UserDataError as e:
            raise ValueError(str(e)) from None
        return value


class FileImages(BaseModel):
    """Labelled evaluation images in an .npz (`x`, `y`) on the data volume."""

    model_config = _STRICT
    kind: Literal["file"]
    name: FileName


ImageSource = Annotated[UploadedImages | FileImages, Field(discriminator="kind")]


class Evaluation(BaseModel):
    """The adversarial examples are crafted from the first `size` evaluation images outside S0: those of the
    dataset's `split`, or of `source` (an upload or a file) when the campaign brings its own."""

    model_config = _STRICT
    split: Split = "test"
    size: int = Field(1000, ge=1, le=100_000)
    source: ImageSource | None = Field(None, description="The campaign's own labelled images")
    noise_baseline: bool = Field(True, description="Also label the same images moved by random noise of the same "
                                 "size (its own query phase): the baseline the transfer rate is read against")
