"""The served models: loaded once per process, each behind its backend, run off the event loop, labels only.

With dynamic batching on (the default), concurrent requests for one model are gathered into one forward by
its `Batcher`; off, each request runs its own forward. Either way forwards run one at a time on one thread:
a backend already uses every core for one batch, and a single worker keeps them from being oversubscribed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bbrange.oracle.serving.backend import Backend, open_backend
from bbrange.oracle.serving.batching import Batcher
from bbrange.shared.model_card import ModelCard, discover_cards

log = logging.getLogger(__name__)

# (model, inputs, requests, forward seconds) of every forward run, for the metrics.
ForwardObserver = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class BatchingSettings:
    enabled: bool = True
    max_inputs: int = 256
    max_delay_s: float = 0.002


@dataclass
class ServedModel:
    card: ModelCard
    backend: Backend
    batcher: Batcher | None


class Predictor:
    def __init__(self, model_dir: Path, device: torch.device, names: list[str] | None = None,
                 batching: BatchingSettings | None = None, observe: ForwardObserver | None = None) -> None:
        self.device = device
        self.batching = batching or BatchingSettings()
        self._observe = observe
        self.models: dict[str, ServedModel] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        cards = discover_cards(model_dir)
        if names is not None:
            wanted = set(names)
            cards = [c for c in cards if c.stem in wanted]
            missing = wanted - {c.stem for c in cards}
            if missing:
                raise FileNotFoundError(f"no model card for {', '.join(sorted(missing))} in {model_dir}")
        for card_file in cards:
            self.add(card_file)
        if not self.models:
            raise FileNotFoundError(f"no models in {model_dir}: train one with `bbrange oracle train --dataset mnist` "
                                    "or import one with `bbrange oracle import`")

    def add(self, card_file: Path) -> ServedModel:
        """Load the model of this card and serve it (replacing none: the name must be new)."""
        backend, card = open_backend(card_file, self.device)
        if card.name in self.models:
            backend.close()
            raise ValueError(f"a model named {card.name!r} is already served")
        batcher = None
        if self.batching.enabled:
            batcher = Batcher(backend.labels, self._executor, self.batching.max_inputs, self.batching.max_delay_s,
                              observe=self._observer(card.name))
        served = ServedModel(card, backend, batcher)
        self.models[card.name] = served
        accuracy = "no test set" if card.test_accuracy is None else f"test accuracy {card.test_accuracy:.2%}"
        log.info("serving %s (%s %s on %s, %s) with %s on %s", card.name, card.format, card.architecture,
                 card.dataset, accuracy, backend.kind, backend.device)
        return served

    def _observer(self, name: str) -> Callable[[int, int, float], None] | None:
        observe = self._observe
        if observe is None:
            return None
        return lambda inputs, requests, seconds: observe(name, inputs, requests, seconds)

    @contextlib.contextmanager
    def arriving(self, name: str) -> Iterator[None]:
        """A request for this model is on its way to `predict`: its batcher may wait for it."""
        served = self.models.get(name)
        if served is None or served.batcher is None:
            yield
            return
        with served.batcher.arriving():
            yield

    def _forward(self, backend: Backend, x: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        labels = backend.labels(x)
        return labels, time.perf_counter() - started

    async def predict(self, name: str, x: np.ndarray) -> np.ndarray:
        """Labels for a validated float32 batch in [0, 1]."""
        served = self.models[name]
        if served.batcher is not None:
            return await served.batcher.labels(x)
        labels, seconds = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._forward, served.backend, x)
        if self._observe is not None:
            self._observe(name, len(x), 1, seconds)
        return labels

    def close(self) -> None:
        for served in self.models.values():
            if served.batcher is not None:
                served.batcher.close()
            served.backend.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
