"""The served models: loaded once per process, run off the event loop, argmax only."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bbrange.shared.devices import as_batch
from bbrange.shared.model_card import ModelCard, discover_cards, load_model

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    card: ModelCard
    module: nn.Module


class Predictor:
    def __init__(self, model_dir: Path, device: torch.device, names: list[str] | None = None) -> None:
        self.device = device
        self.models: dict[str, ServedModel] = {}
        cards = discover_cards(model_dir)
        if names is not None:
            wanted = set(names)
            cards = [c for c in cards if c.stem in wanted]
            missing = wanted - {c.stem for c in cards}
            if missing:
                raise FileNotFoundError(f"no model card for {', '.join(sorted(missing))} in {model_dir}")
        for card_file in cards:
            module, card = load_model(card_file, device)
            self.models[card.name] = ServedModel(card, module)
            log.info("serving %s (%s on %s, test accuracy %.2f%%)", card.name, card.architecture, card.dataset,
                     100 * card.test_accuracy)
        if not self.models:
            raise FileNotFoundError(f"no models in {model_dir}: train one with `bbrange oracle train --dataset mnist`")
        # One inference thread: torch already uses every core for one batch, and a single worker keeps
        # concurrent requests from oversubscribing them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def _forward(self, name: str, x: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        with torch.inference_mode():
            labels = self.models[name].module(as_batch(x, self.device)).argmax(1).cpu().numpy()
        return labels.astype(np.int64), time.perf_counter() - started

    async def predict(self, name: str, x: np.ndarray) -> tuple[np.ndarray, float]:
        """Labels for a validated float32 batch, and the forward time in seconds."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._forward, name, x)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
