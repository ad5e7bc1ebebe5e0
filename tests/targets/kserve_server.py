"""A KServe model server (KServe's own Python `ModelServer`, not ours) serving small torch classifiers over
V1 (`/v1/models/NAME:predict`) and the Open Inference Protocol V2 (`/v2/models/NAME`,
`/v2/models/NAME/infer`). Run by the tests from the test-only KServe environment (.venv-kserve, made by
`make test`), where bbrange is not installed:

    .venv-kserve/bin/python tests/targets/kserve_server.py --port P --counts COUNTS.jsonl \
        --model mnist:W.pt:1,28,28:10 [--model ...]

The models answer probabilities (what a deployed classifier usually returns); the attacker must reduce
them to labels. Every predict call appends {"model", "protocol", "inputs", "at"} to COUNTS.jsonl, so that a test
can compare what the server saw with what a campaign counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import load_mlp, probabilities  # noqa: E402  (beside this file)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--counts", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True, help="NAME:WEIGHTS:C,H,W:CLASSES")
    ours, rest = parser.parse_known_args()
    sys.argv = sys.argv[:1] + rest  # kserve parses the command line when it is imported

    import kserve
    from kserve import InferOutput, InferRequest, InferResponse

    lock = threading.Lock()

    def count(model: str, protocol: str, n: int) -> None:
        with lock, ours.counts.open("a") as f:
            f.write(json.dumps({"model": model, "protocol": protocol, "inputs": n, "at": time.time()}) + "\n")

    class Classifier(kserve.Model):
        def __init__(self, spec: str) -> None:
            name, weights, shape, classes = spec.split(":")
            super().__init__(name)
            self.shape = tuple(int(v) for v in shape.split(","))
            self.classes = int(classes)
            self.net = load_mlp(Path(weights), self.shape, self.classes)  # type: ignore[arg-type]
            self.ready = True

        def get_input_types(self) -> list[dict]:
            return [{"name": "image", "datatype": "FP32", "shape": [-1, *self.shape]}]

        def get_output_types(self) -> list[dict]:
            return [{"name": "probabilities", "datatype": "FP32", "shape": [-1, self.classes]}]

        async def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
            if isinstance(payload, InferRequest):
                x = payload.inputs[0].as_numpy().astype(np.float32).reshape(-1, *self.shape)
                count(self.name, "v2", len(x))
                p = probabilities(self.net, x)
                out = InferOutput(name="probabilities", shape=list(p.shape), datatype="FP32", data=p)
                return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or uuid.uuid4().hex)
            x = np.asarray(payload["instances"], dtype=np.float32).reshape(-1, *self.shape)
            count(self.name, "v1", len(x))
            return {"predictions": probabilities(self.net, x).tolist()}

    kserve.ModelServer(http_port=ours.port, enable_grpc=False, workers=1).start([Classifier(m) for m in ours.model])


if __name__ == "__main__":
    main()
