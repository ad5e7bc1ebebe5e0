"""The images of a campaign spec: its input domain, S0 and the labelled evaluation set, from a dataset
preset (MNIST, GTSRB), an upload, or a file on the operator's data volume."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

_STRICT = ConfigDict(strict=True, extra="forbid")
Split = Literal["train", "test"]
_Upload = TypeVar("_Upload", bound=BaseModel)
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
    """S0 uploaded by the caller: a base64 .npy array (N, C, H, W), float32 in the domain's range or uint8.

    The API decodes it once and keeps the array apart (on the data directory, until the campaign ends): the
    stored spec, and every record shown back, hold only its `shape`."""

    model_config = _STRICT
    kind: Literal["upload"]
    npy_base64: str | None = Field(None, description="base64 of a .npy file; labels are not needed, the oracle "
                                   "provides them (required when submitting)", repr=False)
    shape: list[int] | None = Field(None, description="Set by the service: the shape of the decoded upload")

    @model_validator(mode="after")
    def _one_form(self) -> UploadedInitialSet:
        return _exactly_one_form(self, self.npy_base64, self.shape, "npy_base64")


def _exactly_one_form(model: _Upload, data: str | None, shape: list[int] | None, field: str) -> _Upload:
    if data is None and shape is None:
        raise ValueError(f"an upload needs {field}")
    if data is not None and shape is not None:
        raise ValueError(f"give {field} only: the service sets `shape` once it has decoded the upload")
    return model


class FileInitialSet(BaseModel):
    """S0 from an .npz on the data volume (its array `x`): `size` images from `offset` on."""

    model_config = _STRICT
    kind: Literal["file"]
    name: FileName
    offset: int = Field(0, ge=0, le=1_000_000)
    size: int = Field(150, ge=1, le=10_000)


InitialSet = Annotated[DatasetInitialSet | UploadedInitialSet | FileInitialSet, Field(discriminator="kind")]


class UploadedImages(BaseModel):
    """Labelled evaluation images uploaded by the caller: base64 of an .npz with `x` (N, C, H, W) and `y`.

    Kept like an uploaded S0: decoded once by the API, stored apart, only the `shape` of `x` in the spec."""

    model_config = _STRICT
    kind: Literal["upload"]
    npz_base64: str | None = Field(None, description="base64 of an .npz holding x and y (required when "
                                   "submitting)", repr=False)
    shape: list[int] | None = Field(None, description="Set by the service: the shape of the decoded `x`")

    @model_validator(mode="after")
    def _one_form(self) -> UploadedImages:
        return _exactly_one_form(self, self.npz_base64, self.shape, "npz_base64")


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
