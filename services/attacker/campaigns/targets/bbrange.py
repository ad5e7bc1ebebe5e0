"""Our own oracle's protocol: `.npy` batches to POST /v1/models/{model}/predict, labels back as `.npy` or
JSON. A server that copies the protocol without `GET /v1/models` works when the spec gives the shape."""

from __future__ import annotations

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel, to_wire
from bbrange.attacker.campaigns.targets.metadata import ServedModels, names, parse_answer
from bbrange.shared.wire import JSON_MEDIA_TYPE, NPY_MEDIA_TYPE, decode_npy, encode_npy


class BbrangeTarget(TargetClient):
    protocol = "bbrange"

    def _describe(self) -> RemoteModel:
        t = self.target
        # /v1/usage needs the key: a wrong one (each of several) fails here, in the first second, not after the
        # dataset is loaded. A server that copies the protocol without this route is not refused for it.
        for index in range(len(self.keys.usage)):
            self.keys.use(index)
            try:
                self._get("/v1/usage")
            except OracleError as e:
                if e.status in (401, 403):
                    raise
                break
        models = self._get("/v1/models", missing_ok=True)
        if models.status_code == 404:
            if t.input_shape is None or t.num_classes is None:
                raise OracleError("no_metadata", "the endpoint has no GET /v1/models to describe its models: give "
                                  "target.input_shape and target.num_classes", 404)
            return RemoteModel(t.model, (t.input_shape[0], t.input_shape[1], t.input_shape[2]), t.num_classes)
        served = {m.name: m for m in parse_answer(ServedModels, models, "GET /v1/models").models}
        if self.model not in served:
            raise OracleError("unknown_model", f"the oracle serves no model {self.model!r}; it serves: "
                              f"{names(list(served))}")
        m = served[self.model]
        c, h, w = m.input_shape
        return RemoteModel(self.model, (c, h, w), m.num_classes, card=m.card())

    def _send(self, batch: np.ndarray) -> httpx.Response:
        return self._client.post(
            f"/v1/models/{self.model}/predict", content=encode_npy(to_wire(batch, self.target)),
            headers={"Content-Type": NPY_MEDIA_TYPE, "Accept": f"{NPY_MEDIA_TYPE}, {JSON_MEDIA_TYPE};q=0.5"},
        )

    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        if response.headers.get("content-type", "").startswith(JSON_MEDIA_TYPE):
            return self._read(response.json()["labels"], n, "labels")
        return self._read(decode_npy(response.content), n, "labels")
