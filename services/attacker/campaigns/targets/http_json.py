"""Any JSON API, described in the spec: the request body is a template with "$inputs" where the batch
goes (each input rendered by its own template when the spec gives one), and the labels (or the scores)
are found in the answer by a JMESPath expression."""

from __future__ import annotations

import json
from typing import Any

import httpx
import jmespath
import numpy as np

from bbrange.attacker.campaigns.spec import json_templates
from bbrange.attacker.campaigns.spec.target import HttpJsonApi, Target
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel, to_wire


class HttpJsonTarget(TargetClient):
    protocol = "http-json"

    def __init__(self, target: Target, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        assert target.http_json is not None  # the spec requires it for this protocol
        self.api: HttpJsonApi = target.http_json
        self._labels_path = jmespath.compile(self.api.labels_path or self.api.scores_path or "")

    def _largest_batch(self, target: Target) -> int:
        return 1 if target.http_json is not None and target.http_json.one_input_per_request else target.max_batch_size

    def _describe(self) -> RemoteModel:
        t = self.target
        assert t.input_shape is not None and t.num_classes is not None  # the spec requires them for http-json
        return RemoteModel(self.model, (t.input_shape[0], t.input_shape[1], t.input_shape[2]), t.num_classes)

    def _send(self, batch: np.ndarray) -> httpx.Response:
        x = to_wire(batch, self.target).tolist()
        if self.api.input_template is not None:
            x = [json_templates.fill(self.api.input_template, json_templates.ONE_INPUT, one) for one in x]
        body = json_templates.fill(self.api.request_template, json_templates.BATCH,
                                   x[0] if self.api.one_input_per_request else x)
        return self._client.post(self.api.path.replace("{model}", self.model), content=json.dumps(body),
                                 headers={"Content-Type": "application/json"})

    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        found = self._labels_path.search(response.json())
        if found is None:
            raise KeyError(f"{self.api.labels_path or self.api.scores_path!r} matches nothing in the answer")
        return self._read(found, n, "labels" if self.api.labels_path is not None else "scores")
