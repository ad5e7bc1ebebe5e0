"""Endpoints that were not written for bbrange, as a red team meets them, in one test process, each an origin
of its own (its own port: the attacker's allowlist names exact origins and refuses URL paths). Run with
`python -m tests.targets.foreign_apps` and FOREIGN_PORTS (JSON: prefix -> port, "" for GET /_counts); the
models are the tests' small MLPs (FOREIGN_MNIST_WEIGHTS, FOREIGN_BLOBS_WEIGHTS).

- /copycat: our protocol copied without GET /v1/models or /v1/usage: `.npy` in, labels as JSON out, at
  most 256 inputs per request (413 beyond), every route behind a bearer key as a gateway would put it;
- /copycat422: the same, refusing a large batch with a 422 in FastAPI's own error shape;
- /shuffled: the copycat with another class order (oracle label = (3 * digit + 1) mod 10);
- /classify: a JSON API unlike ours: NHWC bytes under "images", X-Api-Key, `{"results": [{"class_id",
  "probs"}]}` back;
- /torchserve: TorchServe's inference API (GET /ping, POST /predictions/{model} with an image file,
  top-5 `{"index": probability}` back);
- /moved: redirects everything; /broken: a proxy's HTML error page holding something secret;
- /busy: the JSON API, answering 503 with Retry-After: 1 to the first BUSY_FOR requests;
- /triton: V2 as Triton serves a model with a flat input (`[-1, 784]`), a label output typed FP32 of shape
  `[-1, 1]` and a batch cap of TRITON_MAX_BATCH, refused with Triton's own 400;
- /tfserving: V1 as TF Serving answers a label output of shape [None, 1]: `{"predictions": [[7], [2], ...]}`;
- /objects: a JSON API taking each image in an object (`{"images": [{"pixels": CHW}, ...]}`), answering class
  ids as strings and refusing anything else with RFC 7807 problem details.

GET /_counts tells what each endpoint saw: requests and inputs, answered or refused.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from PIL import Image

from bbrange.shared.wire import decode_npy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import load_mlp, probabilities  # noqa: E402

MAX_INPUTS = 256
COPYCAT_KEY = "copycat-key"
JSON_KEY = "json-key"
BUSY_FOR = 2
SECRET = "internal-db-password-hunter2"
TRITON_MAX_BATCH = 64
PROBLEM = "application/problem+json"


def create_app() -> FastAPI:
    mnist = load_mlp(Path(os.environ["FOREIGN_MNIST_WEIGHTS"]), (1, 28, 28), 10)
    blobs = load_mlp(Path(os.environ["FOREIGN_BLOBS_WEIGHTS"]), (3, 48, 48), 5)
    counts: Counter[str] = Counter()
    app = FastAPI()

    def seen(name: str, inputs: int, answered: bool) -> None:
        counts[f"{name}.requests"] += 1
        counts[f"{name}.{'inputs' if answered else 'refused_inputs'}"] += inputs

    def copycat(name: str, order: np.ndarray, too_large_status: int) -> APIRouter:
        router = APIRouter()

        @router.post("/v1/models/{model}/predict")
        async def predict(model: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {COPYCAT_KEY}":
                return JSONResponse({"error": {"code": "unauthorized", "message": "unknown API key"}}, 401)
            x = decode_npy(await request.body()).astype(np.float32)
            if len(x) > MAX_INPUTS:
                seen(name, len(x), answered=False)
                if too_large_status == 413:
                    return JSONResponse({"error": {"code": "too_big", "message": "payload rejected"}}, 413)
                return JSONResponse({"detail": f"Batch too large: {len(x)} inputs, at most {MAX_INPUTS}"}, 422)
            seen(name, len(x), answered=True)
            return JSONResponse({"labels": order[probabilities(mnist, x).argmax(1)].tolist()})

        @router.get("/v1/usage")
        async def usage(request: Request) -> JSONResponse:  # the gateway's key check; the route itself is not there
            if request.headers.get("authorization") != f"Bearer {COPYCAT_KEY}":
                return JSONResponse({"error": {"code": "unauthorized", "message": "unknown API key"}}, 401)
            return JSONResponse({"detail": "Not Found"}, 404)

        return router

    identity = np.arange(10)
    app.include_router(copycat("copycat", identity, 413), prefix="/copycat")
    app.include_router(copycat("copycat422", identity, 422), prefix="/copycat422")
    app.include_router(copycat("shuffled", (3 * identity + 1) % 10, 413), prefix="/shuffled")

    def classify(name: str, request_body: dict[str, Any], key: str | None) -> JSONResponse:
        if key != JSON_KEY:
            return JSONResponse({"message": "forbidden"}, 403)
        x = np.asarray(request_body["images"], dtype=np.uint8)  # (N, H, W, C) bytes
        seen(name, len(x), answered=True)
        p = probabilities(blobs, x.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        return JSONResponse({"model": "blobs-mlp", "results": [{"class_id": int(row.argmax()), "probs": row.tolist()}
                                                                for row in p]})

    @app.post("/classify/api/v3/classify")
    async def classify_route(request: Request) -> JSONResponse:
        return classify("classify", await request.json(), request.headers.get("x-api-key"))

    @app.post("/busy/api/v3/classify")
    async def busy_route(request: Request) -> JSONResponse:
        if counts["busy.refused_requests"] < BUSY_FOR:
            counts["busy.refused_requests"] += 1
            return JSONResponse({"message": "warming up"}, 503, headers={"Retry-After": "1"})
        return classify("busy", await request.json(), request.headers.get("x-api-key"))

    @app.get("/triton/v2/models/{model}")
    async def triton_metadata(model: str) -> dict[str, Any]:
        return {"name": model, "platform": "pytorch_libtorch",
                "inputs": [{"name": "INPUT__0", "datatype": "FP32", "shape": [-1, 784]}],
                "outputs": [{"name": "label", "datatype": "FP32", "shape": [-1, 1]}]}

    @app.post("/triton/v2/models/{model}/infer")
    async def triton_infer(model: str, request: Request) -> JSONResponse:
        counts[f"triton.user-agent: {request.headers.get('user-agent')}"] += 1
        tensor = (await request.json())["inputs"][0]
        n = tensor["shape"][0]
        if n > TRITON_MAX_BATCH:
            seen("triton", n, answered=False)
            return JSONResponse({"error": f"inference request batch-size must be <= {TRITON_MAX_BATCH} for '{model}'"},
                                400)
        if tensor["shape"] != [n, 784]:
            return JSONResponse({"error": f"unexpected shape for input 'INPUT__0' for model '{model}'. Expected "
                                          f"[-1,784], got {tensor['shape']}"}, 400)
        seen("triton", n, answered=True)
        x = np.asarray(tensor["data"], dtype=np.float32).reshape(n, 1, 28, 28)
        labels = probabilities(mnist, x).argmax(1).astype(np.float32)
        return JSONResponse({"model_name": model, "outputs": [{"name": "label", "datatype": "FP32", "shape": [n, 1],
                                                                "data": labels.tolist()}]})

    @app.get("/tfserving/v1/models/{model}")
    async def tfserving_status(model: str) -> dict[str, Any]:
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK"}}]}

    @app.post("/tfserving/v1/models/{model}:predict")
    async def tfserving_predict(model: str, request: Request) -> dict[str, Any]:
        x = np.asarray((await request.json())["instances"], dtype=np.float32)
        seen("tfserving", len(x), answered=True)
        return {"predictions": probabilities(mnist, x).argmax(1)[:, None].tolist()}

    @app.post("/objects/api/classify")
    async def objects_classify(request: Request) -> JSONResponse:
        images = (await request.json()).get("images")
        shapes = [np.shape(i.get("pixels")) if isinstance(i, dict) else None for i in images or []]
        if not shapes or any(s != (1, 28, 28) for s in shapes):
            bad = next((s for s in shapes if s != (1, 28, 28)), None)
            return JSONResponse({"type": "https://example.com/problems/bad-image", "title": "Invalid image",
                                 "status": 422, "detail": f"each image must be {{'pixels': [1, 28, 28]}} (CHW), got "
                                                          f"{list(bad) if bad else 'no images'}"},
                                422, media_type=PROBLEM)
        seen("objects", len(images), answered=True)
        x = np.asarray([i["pixels"] for i in images], dtype=np.float32)
        return JSONResponse({"results": [{"class_id": str(int(k))} for k in probabilities(mnist, x).argmax(1)]})

    @app.get("/torchserve/ping")
    async def ping() -> dict[str, str]:
        return {"status": "Healthy"}

    @app.post("/torchserve/predictions/{model}")
    async def torchserve_predict(model: str, request: Request) -> JSONResponse:
        if model != "mnist":
            return JSONResponse({"code": 404, "type": "ModelNotFoundException",
                                 "message": f"Model not found in model store: {model}"}, 404)
        image = Image.open(io.BytesIO(await request.body())).convert("L")
        x = np.asarray(image, dtype=np.float32)[None, None] / 255.0
        seen("torchserve", 1, answered=True)
        p = probabilities(mnist, x)[0]
        top = np.argsort(p)[::-1][:5]
        return JSONResponse({str(int(k)): float(p[k]) for k in top})

    @app.api_route("/moved/{rest:path}", methods=["GET", "POST"])
    async def moved(rest: str) -> RedirectResponse:
        return RedirectResponse(f"http://127.0.0.1:9/{rest}", 307)

    @app.api_route("/broken/{rest:path}", methods=["GET", "POST"])
    async def broken(rest: str) -> HTMLResponse:
        return HTMLResponse(f"<html><body><h1>400 Bad Request</h1><pre>upstream config: {SECRET}</pre></body></html>",
                            400)

    @app.get("/_counts")
    async def get_counts() -> dict[str, int]:
        return dict(counts)

    return app


PREFIXES = ("/copycat", "/copycat422", "/shuffled", "/classify", "/busy", "/torchserve", "/moved", "/broken",
            "/triton", "/tfserving", "/objects")


class PrefixByPort:
    """Routes a request to the endpoint whose port it arrived on (the endpoints' routes live under prefixes)."""

    def __init__(self, app: Any, prefixes: dict[int, str]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        prefix = self.prefixes.get(scope.get("server", ("", 0))[1], "") if scope["type"] == "http" else ""
        if prefix:
            scope = {**scope, "path": prefix + scope["path"], "raw_path": prefix.encode() + scope.get("raw_path", b"")}
        await self.app(scope, receive, send)


def main() -> None:
    import socket

    import uvicorn

    ports: dict[str, int] = json.loads(os.environ["FOREIGN_PORTS"])
    sockets = []
    for port in ports.values():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sockets.append(sock)
    app = PrefixByPort(create_app(), {port: prefix for prefix, port in ports.items()})
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=sockets)


if __name__ == "__main__":
    main()
