"""Pydantic models at the HTTP boundary that both services speak."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable reason, e.g. budget_exhausted, wrong_shape")
    message: str = Field(description="What is wrong, for a person")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelInfo(BaseModel):
    name: str
    dataset: str
    input_shape: tuple[int, int, int] = Field(description="(channels, height, width) of one input")
    num_classes: int
    class_names: list[str] | None = None


class ModelList(BaseModel):
    models: list[ModelInfo]


class PredictRequest(BaseModel):
    """JSON encoding of a batch: NCHW nested lists of numbers in [0, 1]."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"examples": [{"inputs": [[[[0.0, 0.5], [1.0, 0.25]]]]}]},
    )
    inputs: list[list[list[list[float]]]]


class PredictResponse(BaseModel):
    model: str
    labels: list[int] = Field(description="The predicted class index of each input, in order")
    budget_remaining: int
