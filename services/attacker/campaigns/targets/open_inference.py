"""The Open Inference Protocol (KServe V2; NVIDIA Triton, Seldon MLServer): tensors as JSON to
POST /v2/models/{model}/infer, metadata from GET /v2/models/{model}.

The label is read from the output the spec names (else the model's first): one whole number per input
gives it directly (INT64 `[-1]`, FP32 `[-1, 1]`, class ids as text), a score output (num_classes values per
input) gives its argmax, and Triton's classification extension ("score:index[:label]" strings) gives its
index. A model whose input is flat (`[-1, 784]`) is sent each image as one vector of C·H·W values.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from bbrange.attacker.campaigns.errors import OracleError, OracleProtocolError
from bbrange.attacker.campaigns.targets.client import TargetClient
from bbrange.attacker.campaigns.targets.encoding import RemoteModel, chw, to_wire
from bbrange.attacker.campaigns.targets.metadata import V2Metadata, V2Tensor, parse_answer
from bbrange.attacker.campaigns.targets.refusals import clip


class OpenInferenceTarget(TargetClient):
    protocol = "open-inference-v2"
    _input_name: str = "input"
    _output_name: str | None = None
    _flat: bool = False  # the model takes [N, C·H·W]

    def _describe(self) -> RemoteModel:
        t = self.target
        route = f"GET /v2/models/{self.model}"
        response = self._get(f"/v2/models/{self.model}", missing_ok=True)
        if response.status_code == 404:
            raise OracleError("unknown_model", f"the endpoint serves no model {self.model!r} ({route} answered 404)",
                              404)
        meta = parse_answer(V2Metadata, response, route)
        self._input_name = t.input_name or (meta.inputs[0].name if meta.inputs else "input")
        self._output_name = t.output_name or (meta.outputs[0].name if meta.outputs else None)
        declared = next((i for i in meta.inputs if i.name == self._input_name), None)
        self._flat = t.input_flat or (declared is not None and len(declared.shape) == 2)
        return RemoteModel(self.model, self._input_shape(declared), self._num_classes(meta))

    def _input_shape(self, declared: V2Tensor | None) -> tuple[int, int, int]:
        t = self.target
        if t.input_shape is not None:
            c, h, w = t.input_shape
            if self._flat and declared is not None and 0 < declared.shape[-1] != c * h * w:
                raise OracleProtocolError(f"model {self.model!r} takes flat inputs of {declared.shape[-1]} values, "
                                          f"not the {c * h * w} of target.input_shape {t.input_shape}")
            return c, h, w
        if declared is None:
            raise OracleProtocolError(f"model {self.model!r} declares no input {clip(self._input_name, 64)!r}; "
                                      "give target.input_shape")
        dims = declared.shape[1:]
        if len(dims) == 1:
            raise OracleProtocolError(f"model {self.model!r} takes flat inputs ({clip(str(declared.shape), 64)}): "
                                      "give target.input_shape, the [C, H, W] of the images they are")
        if any(d < 1 for d in dims):
            raise OracleProtocolError(f"model {self.model!r} declares input shape {clip(str(declared.shape), 64)}, "
                                      "whose image axes are variable (-1): give target.input_shape ([C, H, W])")
        return chw(dims, t)

    def _num_classes(self, meta: V2Metadata) -> int:
        if self.target.num_classes is not None:
            return self.target.num_classes
        out = next((o for o in meta.outputs if o.name == self._output_name), None)
        dims = [] if out is None else out.shape[1:]
        if len(dims) != 1 or dims[0] < 2:
            name = clip(str(self._output_name), 64)
            raise OracleProtocolError(f"model {self.model!r} does not say how many classes it has (output {name!r} "
                                      f"of shape {clip(str(dims), 64)}: labels, or not a score vector); give "
                                      "target.num_classes")
        return dims[0]

    def _send(self, batch: np.ndarray) -> httpx.Response:
        self.describe()  # the tensor names and whether inputs are flat
        x = to_wire(batch, self.target, flat=self._flat)
        tensor = {"name": self._input_name, "shape": list(x.shape), "datatype": "UINT8" if x.dtype == np.uint8 else "FP32",
                  "data": x.reshape(-1).tolist()}
        body: dict[str, Any] = {"inputs": [tensor]}
        if self._output_name is not None:
            body["outputs"] = [{"name": self._output_name}]
        return self._client.post(f"/v2/models/{self.model}/infer", json=body)

    def _labels(self, response: httpx.Response, n: int) -> np.ndarray:
        outputs = response.json()["outputs"]
        out = next((o for o in outputs if o["name"] == self._output_name), outputs[0])
        data = out["data"]
        if out["datatype"] == "BYTES" and data and ":" in str(data[0]):  # Triton's classification extension
            return self._read([int(str(v).split(":")[1]) for v in data], n, "labels")  # "score:index[:label]"
        # V2 data is flat in row-major order; the output's shape says how many values are each input's.
        return self._read(np.asarray(data).reshape(out["shape"]), n)
