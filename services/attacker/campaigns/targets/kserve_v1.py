"""KServe's V1 protocol (TensorFlow Serving's REST API): `{"instances": [...]}` to
POST /v1/models/{model}:predict, `{"predictions": [...]}` back, one per input: a label, a score vector
(its argmax is the label) or an object holding one of them. A label may come nested, as TF Serving
answers an output of shape [None, 1] (`[[7], [2]]`), as a float or as text: see labels.py."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel, to_wire
from bbrange.attacker.campaigns.targets.labels import Expected
from bbrange.attacker.campaigns.targets.metadata import names

LABEL_KEYS = ("label", "class", "class_id", "classes", "prediction")
SCORE_KEYS = ("scores", "probabilities", "logits", "probs")


def label_values(predictions: list[Any]) -> tuple[list[Any], Expected]:
    """The part of the predictions that holds each input's label, and whether it is labels or scores: the
    predictions themselves, or the value of a label (else scores) key of each, where they are objects."""
    if not (predictions and all(isinstance(p, dict) for p in predictions)):
        return predictions, "either"
    first = predictions[0]
    for keys, expected in ((LABEL_KEYS, "labels"), (SCORE_KEYS, "scores")):
        key = next((k for k in keys if k in first), None)
        if key is not None:
            return [p[key] for p in predictions], expected  # type: ignore[return-value]
    raise KeyError(f"no label or scores among the keys {names(list(first))}")


class KServeV1Target(TargetClient):
    protocol = "kserve-v1"

    def _describe(self) -> RemoteModel:
        t = self.target
        assert t.input_shape is not None and t.num_classes is not None  # the spec requires them for V1
        if self._get(f"/v1/models/{self.model}", missing_ok=True).status_code == 404:
            raise OracleError("unknown_model", f"the endpoint serves no model {self.model!r} (GET /v1/models/"
                              f"{self.model} answered 404)", 404)
        return RemoteModel(self.model, (t.input_shape[0], t.input_shape[1], t.input_shape[2]), t.num_classes)

    def _send(self, batch: np.ndarray) -> httpx.Response:
        return self._client.post(f"/v1/models/{self.model}:predict",
                                 json={"instances": to_wire(batch, self.target).tolist()})

    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        predictions = response.json()["predictions"]
        if not isinstance(predictions, list):
            raise TypeError("predictions is not a list")
        values, expected = label_values(predictions)
        return self._read(values, n, expected)
