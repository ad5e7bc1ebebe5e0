"""KServe's V1 protocol (TensorFlow Serving's REST API): `{"instances": [...]}` to
POST /v1/models/{model}:predict, `{"predictions": [...]}` back, one per input: a label, a score vector
(its argmax is the label) or an object holding one of them."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel, to_wire

LABEL_KEYS = ("label", "class", "class_id", "classes", "prediction")
SCORE_KEYS = ("scores", "probabilities", "logits", "probs")


def label_of(prediction: Any) -> int:
    """One input's label from whatever a prediction holds."""
    if isinstance(prediction, dict):
        for key in LABEL_KEYS:
            if key in prediction:
                return label_of(prediction[key])
        for key in SCORE_KEYS:
            if key in prediction:
                return int(np.argmax(prediction[key]))
        raise KeyError(f"no label or scores among {sorted(prediction)[:10]}")
    values = np.asarray(prediction)
    return int(values) if values.ndim == 0 else int(values.reshape(-1).argmax())


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
        return np.array([label_of(p) for p in response.json()["predictions"]], dtype=np.int64)
