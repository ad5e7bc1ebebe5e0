"""The floor of the side-by-side benchmark: a bare ASGI endpoint on uvicorn + uvloop + httptools that answers an
Open Inference Protocol V2 binary infer request with one forward of the model, and nothing else (no framework,
no authentication, no budget, no detection, no metrics). Started by serving_side_by_side.py:

    .venv/bin/python benchmarks/serving_floor.py --port P --card MODEL_DIR/mnist.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn

from bbrange.shared.model_card import load_model

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


def make_app(card_file: Path) -> Callable[[Scope, Callable[[], Awaitable[Message]],
                                           Callable[[Message], Awaitable[None]]], Awaitable[None]]:
    module, card = load_model(card_file, torch.device("cpu"))
    shape = tuple(card.input_shape)

    async def app(scope: Scope, receive: Callable[[], Awaitable[Message]],
                  send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":  # the benchmark's readiness probe
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        split = int(dict(scope["headers"]).get(b"inference-header-content-length", b"0"))
        head = json.loads(body[:split]) if split else {}
        x = np.frombuffer(body[split:], dtype="<f4").reshape(-1, *shape)
        with torch.inference_mode():
            labels = module(torch.from_numpy(x)).argmax(1).numpy().astype("<i8")
        out = json.dumps({"model_name": card.name, "id": head.get("id", ""), "outputs": [
            {"name": "label", "shape": [len(labels)], "datatype": "INT64",
             "parameters": {"binary_data_size": labels.nbytes}}]}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/octet-stream"),
            (b"inference-header-content-length", str(len(out)).encode())]})
        await send({"type": "http.response.body", "body": out + labels.tobytes()})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--card", type=Path, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(args.card), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
