"""The Open Inference Protocol (KServe V2; NVIDIA Triton, Seldon MLServer): tensors as JSON to
POST /v2/models/{model}/infer, metadata from GET /v2/models/{model}.

The label is read from the output the spec names (else the model's first): an integer output gives it
directly, a score output (one vector per input) gives its argmax, and Triton's classification extension
("score:index[:label]" strings) gives its index.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleError, OracleProtocolError
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel, chw, to_wire


class OpenInferenceTarget(TargetClient):
    protocol = "open-inference-v2"
    _input_name: str = "input"
    _output_name: str | None = None

    def _describe(self) -> RemoteModel:
        t = self.target
        response = self._get(f"/v2/models/{self.model}", missing_ok=True)
        if response.status_code == 404:
            raise OracleError("unknown_model", f"the endpoint serves no model {self.model!r} (GET /v2/models/"
                              f"{self.model} answered 404)", 404)
        meta: dict[str, Any] = response.json()
        inputs, outputs = meta.get("inputs") or [], meta.get("outputs") or []
        self._input_name = t.input_name or (inputs[0]["name"] if inputs else "input")
        self._output_name = t.output_name or (outputs[0]["name"] if outputs else None)
        shape = t.input_shape
        if shape is None:
            declared = next((i for i in inputs if i["name"] == self._input_name), None)
            if declared is None:
                raise OracleProtocolError(f"model {self.model!r} declares no input {self._input_name!r}; give "
                                          "target.input_shape")
            shape = [int(v) for v in declared["shape"][1:]]
        num_classes = t.num_classes
        if num_classes is None:
            out = next((o for o in outputs if o["name"] == self._output_name), None)
            dims = [] if out is None else [int(v) for v in out["shape"][1:]]
            if len(dims) != 1 or dims[0] < 2:
                raise OracleProtocolError(f"model {self.model!r} does not say how many classes it has (output "
                                          f"{self._output_name!r} of shape {dims}); give target.num_classes")
            num_classes = dims[0]
        return RemoteModel(self.model, chw(shape, t) if t.input_shape is None else (shape[0], shape[1], shape[2]),
                           num_classes)

    def _send(self, batch: np.ndarray) -> httpx.Response:
        x = to_wire(batch, self.target)
        tensor = {"name": self._input_name, "shape": list(x.shape), "datatype": "UINT8" if x.dtype == np.uint8 else "FP32",
                  "data": x.reshape(-1).tolist()}
        body: dict[str, Any] = {"inputs": [tensor]}
        if self._output_name is not None:
            body["outputs"] = [{"name": self._output_name}]
        return self._client.post(f"/v2/models/{self.model}/infer", json=body)

    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        outputs = response.json()["outputs"]
        out = next((o for o in outputs if o["name"] == self._output_name), outputs[0])
        data, datatype = out["data"], out["datatype"]
        if datatype == "BYTES":  # Triton's classification extension: "score:index[:label]"
            return np.array([int(str(v).split(":")[1]) for v in data])
        values = np.asarray(data)
        if datatype.startswith(("INT", "UINT")) and values.size == n:
            return values.reshape(n)
        best: np.ndarray = values.reshape(n, -1).argmax(1)
        return best
