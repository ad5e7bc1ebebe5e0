"""The metadata answers the adapters read (our GET /v1/models, V2's GET /v2/models/{model}), as pydantic
models: an answer of another shape (a name that is not text, a shape that is not numbers) is an
`OracleProtocolError` that says where it went wrong, not an exception that quotes the foreign values."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bbrange.attacker.campaigns.errors import OracleProtocolError
from bbrange.attacker.campaigns.targets.refusals import clip

NAMES_SHOWN = 10
MAX_CARD_CLASS_NAMES = 1_000  # more are left out of the card rather than kept in every record


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ServedModel(_Answer):
    name: str
    input_shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=3, max_length=3)
    num_classes: int = Field(ge=2)
    dataset: str | None = None
    class_names: list[str] | None = None

    def card(self) -> dict[str, Any]:
        """What a report shows of the model, bounded: the record keeps it, and the endpoint is not ours to trust."""
        card: dict[str, Any] = {"name": clip(self.name, 100)}
        if self.dataset is not None:
            card["dataset"] = clip(self.dataset, 100)
        if self.class_names is not None and len(self.class_names) <= MAX_CARD_CLASS_NAMES:
            card["class_names"] = [clip(n, 64) for n in self.class_names]
        return card


class ServedModels(_Answer):
    """Our GET /v1/models."""

    models: list[ServedModel] = []


class V2Tensor(_Answer):
    name: str
    datatype: str | None = None
    shape: list[int] = Field(min_length=1)


class V2Metadata(_Answer):
    """GET /v2/models/{model} of the Open Inference Protocol."""

    inputs: list[V2Tensor] = []
    outputs: list[V2Tensor] = []


Answer = TypeVar("Answer", bound=_Answer)


def parse_answer(model: type[Answer], response: httpx.Response, route: str) -> Answer:
    try:
        return model.model_validate_json(response.content)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the top level"
        raise OracleProtocolError(f"{route} answered metadata this adapter cannot read: {clip(first['msg'], 120)} "
                                  f"at {clip(where, 80)} ({e.error_count()} problem(s))") from None


def names(values: list[str]) -> str:
    """Names an endpoint gave, as an error lists them: the first few, each clipped."""
    shown = ", ".join(clip(repr(v), 40) for v in sorted(values)[:NAMES_SHOWN])
    more = f" and {len(values) - NAMES_SHOWN} more" if len(values) > NAMES_SHOWN else ""
    return (shown + more) or "nothing"
