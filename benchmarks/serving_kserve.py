"""The anchor of the side-by-side benchmark: KServe's own `ModelServer` (not ours) serving the oracle's weights
with a label output, no authentication and no budget. Run from the KServe environment, where bbrange is not
installed: the architecture comes from shared/architectures.py (beside this repository's benchmarks/) and the
weights from a state dict the benchmark saved with torch.save.

    .venv-kserve/bin/python benchmarks/serving_kserve.py --port P --name mnist --architecture lenet \
        --weights STATE.pt --shape 1,28,28 --classes 10
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import uuid
from pathlib import Path

import numpy as np
import torch

ARCHITECTURES = Path(__file__).resolve().parent.parent / "shared" / "architectures.py"


def build(architecture: str, shape: tuple[int, ...], classes: int, weights: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("architectures", ARCHITECTURES)
    assert spec is not None and spec.loader is not None
    architectures = importlib.util.module_from_spec(spec)
    sys.modules["architectures"] = architectures  # its dataclasses look their module up
    spec.loader.exec_module(architectures)
    module: torch.nn.Module = architectures.build_model(architecture, shape, classes)
    module.load_state_dict(torch.load(weights, map_location="cpu"))
    return module.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--port", "--classes"):
        parser.add_argument(flag, type=int, required=True)
    for flag in ("--name", "--architecture", "--shape"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    ours, rest = parser.parse_known_args()
    sys.argv = sys.argv[:1] + rest  # kserve parses the command line when it is imported

    import kserve
    from kserve import InferOutput, InferRequest, InferResponse

    shape = tuple(int(v) for v in ours.shape.split(","))
    net = build(ours.architecture, shape, ours.classes, ours.weights)

    class Labeller(kserve.Model):
        def __init__(self) -> None:
            super().__init__(ours.name)
            self.ready = True

        async def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
            x = payload.inputs[0].as_numpy().astype(np.float32).reshape(-1, *shape)
            with torch.inference_mode():
                labels = net(torch.from_numpy(x)).argmax(1).numpy().astype(np.int64)
            out = InferOutput(name="label", shape=list(labels.shape), datatype="INT64", data=labels)
            assert isinstance(payload, InferRequest)
            return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or uuid.uuid4().hex)

    kserve.ModelServer(http_port=ours.port, enable_grpc=False, workers=1).start([Labeller()])


if __name__ == "__main__":
    main()
