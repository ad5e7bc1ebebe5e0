"""TorchServe's inference API: one image per POST /predictions/{model} (its image handlers take the image
file itself, so each input is sent as a PNG); the answer is a label, or TorchServe's top-k
`{"class or index": probability}` object, whose most probable key is the label."""

from __future__ import annotations

from typing import TypeGuard

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleError
from bbrange.attacker.campaigns.report.pictures import png_bytes
from bbrange.attacker.campaigns.spec.target import Target
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel
from bbrange.attacker.campaigns.targets.kserve_v1 import LABEL_KEYS, SCORE_KEYS, label_values


class TorchServeTarget(TargetClient):
    protocol = "torchserve"

    def _largest_batch(self, target: Target) -> int:
        return 1  # TorchServe batches on the server side, from single requests

    def _describe(self) -> RemoteModel:
        t = self.target
        assert t.input_shape is not None and t.num_classes is not None  # the spec requires them for TorchServe
        self._get("/ping")
        return RemoteModel(self.model, (t.input_shape[0], t.input_shape[1], t.input_shape[2]), t.num_classes)

    def _send(self, batch: np.ndarray) -> httpx.Response:
        if len(batch) != 1:
            raise OracleError("bad_request", "TorchServe takes one input per request")
        return self._client.post(f"/predictions/{self.model}", content=png_bytes(batch[0]),
                                 headers={"Content-Type": "image/png"})

    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        answer = response.json()
        if isinstance(answer, list) and len(answer) == 1:
            answer = answer[0]
        if _is_top_k(answer):
            best = max(answer, key=answer.__getitem__)
            if not best.isdigit():
                raise KeyError(f"TorchServe answered the class name {best[:40]!r}, not an index: serve the model "
                               "without index_to_name.json, or give the names' order as target.class_map")
            return np.array([int(best)], dtype=np.int64)
        values, expected = label_values([answer])
        return self._read(values, 1, expected)


def _is_top_k(answer: object) -> TypeGuard[dict[str, float]]:
    """TorchServe's classifier handlers answer {class or index: probability} for the top k classes."""
    return (isinstance(answer, dict) and bool(answer) and not any(k in answer for k in LABEL_KEYS + SCORE_KEYS)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in answer.values()))
