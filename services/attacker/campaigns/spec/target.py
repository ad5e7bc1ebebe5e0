"""The `target` of a campaign spec: which endpoint, which protocol, how to authenticate, and how its inputs
and labels relate to the dataset's. Validated in the API process (no engine, no torch here)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from bbrange.attacker.campaigns.errors import TargetNotAllowed
from bbrange.attacker.campaigns.spec import json_templates
from bbrange.attacker.campaigns.spec.allowlist import Origin

_STRICT = ConfigDict(strict=True, extra="forbid")
REVEAL_SECRETS = {"reveal_secrets": True}  # serialization context of the worker's copy of the spec
MAX_KEYS = 1000  # keys of one campaign that takes turns between several (a Sybil attacker: targets/keyring.py)
MASK = "**********"


def _secret_out(value: SecretStr | None, info: SerializationInfo) -> str | None:
    """Secrets serialise masked, except into the worker's copy (dumped with context REVEAL_SECRETS)."""
    if value is None:
        return None
    context = info.context or {}
    return value.get_secret_value() if context.get("reveal_secrets") else MASK


def _secrets_out(values: list[SecretStr] | None, info: SerializationInfo) -> list[str | None] | None:
    """A list of secrets serialises as its secrets do, one by one: masked, their number shown."""
    return None if values is None else [_secret_out(v, info) for v in values]


def _several(what: str) -> Any:
    """A field of 2..MAX_KEYS secrets (distinct: checked by the model, with `_distinct`)."""
    return Field(None, min_length=2, max_length=MAX_KEYS,
                 description=f"{what}, several (2..{MAX_KEYS}, distinct): the campaign's requests take turns "
                             "between them (key_rotation); never shown back")


def _distinct(values: list[SecretStr] | None, field: str) -> None:
    """Refuse a key given twice, saying where by position only (a key is never quoted)."""
    seen: dict[str, int] = {}
    for i, value in enumerate(values or []):
        first = seen.setdefault(value.get_secret_value(), i)
        if first != i:
            raise ValueError(f"{field}[{i}] repeats {field}[{first}]: give each key once")


def _one_form(single: object, several: list[SecretStr] | None, one: str, many: str) -> None:
    """At most one of a secret and a list of them, whose secrets are distinct."""
    if single is not None and several is not None:
        raise ValueError(f"give {one} or {many}, not both")
    _distinct(several, many)


Protocol = Literal["bbrange", "open-inference-v2", "kserve-v1", "torchserve", "http-json"]
Key = Annotated[SecretStr, Field(min_length=1, max_length=512)]
Token = Annotated[SecretStr, Field(min_length=1, max_length=4096)]


class BearerAuth(BaseModel):
    model_config = _STRICT
    kind: Literal["bearer"]
    token: Token | None = None
    tokens: list[Token] | None = _several("Bearer tokens")
    _token_out = field_serializer("token", when_used="json")(_secret_out)
    _tokens_out = field_serializer("tokens", when_used="json")(_secrets_out)

    @model_validator(mode="after")
    def _one_or_several(self) -> BearerAuth:
        _one_form(self.token, self.tokens, "token", "tokens")
        if self.token is None and self.tokens is None:
            raise ValueError("bearer auth needs a token (or tokens, several)")
        return self


class HeaderAuth(BaseModel):
    model_config = _STRICT
    kind: Literal["header"]
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9-]+$", description="e.g. X-Api-Key")
    value: Token | None = None
    values: list[Token] | None = _several("Values of the header")
    _value_out = field_serializer("value", when_used="json")(_secret_out)
    _values_out = field_serializer("values", when_used="json")(_secrets_out)

    @model_validator(mode="after")
    def _one_or_several(self) -> HeaderAuth:
        _one_form(self.value, self.values, "value", "values")
        if self.value is None and self.values is None:
            raise ValueError("header auth needs a value (or values, several)")
        return self


class BasicAuth(BaseModel):
    model_config = _STRICT
    kind: Literal["basic"]
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(max_length=4096)
    _password_out = field_serializer("password", when_used="json")(_secret_out)


Auth = Annotated[BearerAuth | HeaderAuth | BasicAuth, Field(discriminator="kind")]


class HttpJsonApi(BaseModel):
    """Any JSON API, described: where to POST, the body with "$inputs" where the batch goes (optionally each
    input wrapped in a template of its own), and where the label (or the scores, whose argmax is the label)
    is in the answer, as a JMESPath expression. Templates are bounded (json_templates: depth and bytes)."""

    model_config = _STRICT
    path: str = Field("/predict", max_length=512, pattern=r"^/[A-Za-z0-9_.~/{}:-]*$",
                      description="Path of the predict endpoint; {model} is replaced by the model name")
    request_template: dict[str, Any] = Field(
        default_factory=lambda: {"inputs": "$inputs"},
        description='The JSON body; the string "$inputs" is replaced by the batch as a list of the inputs '
                    f"(at most {json_templates.MAX_DEPTH} levels deep, {json_templates.MAX_BYTES} bytes)")
    input_template: Any = Field(
        None, description='One input inside the batch, e.g. {"pixels": "$input"}: the string "$input" is replaced '
                          "by the input's tensor as nested lists, and the batch is the list of these")
    labels_path: str | None = Field(None, max_length=256, description="JMESPath to one integer label per input, "
                                                                       "e.g. 'results[*].class_id'")
    scores_path: str | None = Field(None, max_length=256, description="JMESPath to one score vector per input, "
                                                                       "e.g. 'outputs'")
    one_input_per_request: bool = Field(False, description="Send each input alone (the API takes no batches)")

    @model_validator(mode="after")
    def _one_path(self) -> HttpJsonApi:
        if (self.labels_path is None) == (self.scores_path is None):
            raise ValueError("give exactly one of labels_path and scores_path")
        try:
            jmespath.compile(self.labels_path or self.scores_path or "")
        except JMESPathError as e:
            raise ValueError(f"{'labels_path' if self.labels_path else 'scores_path'} is not a JMESPath "
                             f"expression: {str(e).splitlines()[0][:120]}") from None
        json_templates.check(self.request_template, json_templates.BATCH, "request_template")
        if self.input_template is not None:
            json_templates.check(self.input_template, json_templates.ONE_INPUT, "input_template")
        return self


class Target(BaseModel):
    model_config = _STRICT
    protocol: Protocol = Field("bbrange", description="How to talk to the endpoint: bbrange (ours), "
                               "open-inference-v2 (KServe V2, Triton, MLServer), kserve-v1 (TF Serving style), "
                               "torchserve, or http-json (any JSON API, described in `http_json`)")
    oracle_url: str = Field(description="Origin of the endpoint, e.g. http://127.0.0.1:8000; must be on the "
                                        "service's allowlist", min_length=1, max_length=2048)
    model: str = Field(description="Model name as the endpoint knows it", min_length=1,
                       max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    api_key: SecretStr | None = Field(None, description="Bearer token the campaign spends; never shown back "
                                      "(the same as auth = {kind: bearer, token})", min_length=1, max_length=512)
    api_keys: list[Key] | None = _several("Bearer tokens (oracle API keys)")
    auth: Auth | None = Field(None, description="Bearer token, a named header, or basic auth; never shown back")
    key_rotation: Literal["round_robin"] = Field(
        "round_robin", description="How several keys take turns: round_robin, each predict request with the next "
                                   "key still in the rotation (one whose budget is spent or that the endpoint "
                                   "blocked leaves it)")
    input_shape: list[Annotated[int, Field(ge=1, le=4096)]] | None = Field(
        None, min_length=3, max_length=3, description="[C, H, W] the model takes; needed where the endpoint serves "
                                                      "no metadata")
    num_classes: int | None = Field(None, ge=2, le=100_000, description="Labels the model answers (0..n-1); "
                                    "needed where the endpoint serves no metadata")
    input_layout: Literal["nchw", "nhwc"] = Field("nchw", description="Layout of the tensors the endpoint takes")
    input_flat: bool = Field(False, description="Send each input as one vector of C·H·W values (in input_layout's "
                             "order), for models that take [N, 784]; open-inference-v2 sees it in the metadata")
    input_scale: Literal["unit", "byte"] = Field(
        "unit", description="unit: float32 in [0, 1]; byte: values 0..255 (UINT8 where the protocol has types)")
    input_name: str | None = Field(None, max_length=128, description="open-inference-v2: input tensor name "
                                                                     "(default: the model's first input)")
    output_name: str | None = Field(None, max_length=128, description="open-inference-v2: output to read "
                                                                      "(default: the model's first output)")
    max_batch_size: int = Field(1000, ge=1, le=100_000, description="Most inputs per request; halved "
                                "automatically when the endpoint refuses a batch as too large")
    max_queries_per_second: float | None = Field(None, gt=0, le=1e6, description="Pace the campaign keeps, "
                                                 "in inputs per second, whatever the endpoint allows")
    class_map: list[int] | None = Field(
        None, min_length=2, max_length=100_000, description="class_map[oracle label] = dataset label, where the "
        "endpoint's classes are not the dataset's (same order otherwise)")
    http_json: HttpJsonApi | None = Field(None, description="protocol http-json: how the API is called")
    _api_key_out = field_serializer("api_key", when_used="json")(_secret_out)
    _api_keys_out = field_serializer("api_keys", when_used="json")(_secrets_out)

    @field_validator("oracle_url")
    @classmethod
    def _well_formed(cls, value: str) -> str:
        try:
            Origin.parse(value)
        except TargetNotAllowed as e:
            raise ValueError(str(e)) from None
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Target:
        _one_form(self.api_key, self.api_keys, "api_key", "api_keys")
        if (self.api_key is not None or self.api_keys is not None) and self.auth is not None:
            raise ValueError(f"give {'api_key' if self.api_key is not None else 'api_keys'} or auth, not both")
        if self.protocol == "bbrange" and self.api_key is None and self.api_keys is None and not isinstance(
                self.auth, BearerAuth):
            raise ValueError("the bbrange protocol needs the oracle API key (api_key, or api_keys for several)")
        if self.protocol == "http-json" and self.http_json is None:
            raise ValueError("protocol http-json needs `http_json` (path, request template, labels or scores path)")
        if self.protocol in ("kserve-v1", "torchserve", "http-json") and (
                self.input_shape is None or self.num_classes is None):
            raise ValueError(f"protocol {self.protocol} serves no model metadata: give input_shape and num_classes")
        if self.class_map is not None and self.num_classes is not None and len(self.class_map) != self.num_classes:
            raise ValueError(f"class_map has {len(self.class_map)} entries for {self.num_classes} oracle classes")
        return self

    def secrets(self) -> list[str]:
        """Every secret value of the target, to keep them out of anything shown back."""
        values = [self.api_key] if self.api_key else [*(self.api_keys or [])]
        if isinstance(self.auth, BearerAuth):
            values += [self.auth.token] if self.auth.token else [*(self.auth.tokens or [])]
        elif isinstance(self.auth, HeaderAuth):
            values += [self.auth.value] if self.auth.value else [*(self.auth.values or [])]
        elif isinstance(self.auth, BasicAuth):
            values.append(self.auth.password)
        return [v.get_secret_value() for v in values]
