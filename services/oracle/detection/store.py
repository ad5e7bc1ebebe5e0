"""Detection state in Redis: PRADA's state per client and model, and each client's flag and policy.

    {prefix}:detect:{client}            hash: policy (an admin's override), flagged, reason, model, queries,
                                        statistic, flagged_at (ISO time), linked (clients, comma-separated),
                                        blacklight_epoch (raised by a clear)
    {prefix}:detect:{client}:{model}    hash: g:{c} (G_c's points, pooled, uint8), s:{c} (its ring head and
                                        distance sums), d / dc (the window of D and its classes), meta (JSON)

Every field is bounded by the model's `DetectorConfig` (`bytes_per_client` says how much), so a client
costs at most that whatever it sends. Updates are optimistic transactions (WATCH): oracle processes
sharing one Redis never lose each other's points. Blacklight's state, shared by all clients, is in
`blacklight_store.py`; a client's Blacklight counters live under {prefix}:detect:{client}:{model}:blacklight*.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from redis.asyncio import Redis
from redis.exceptions import WatchError

from bbrange.oracle.detection.config import Policy
from bbrange.oracle.detection.prada import ClassSet, PradaState

_SUMS = np.dtype([("head", "<i8"), ("count", "<i8"), ("total", "<f8"), ("total_sq", "<f8"), ("threshold", "<f8")])


@dataclass(frozen=True)
class Flag:
    reason: str
    model: str
    queries: int  # the client's queries of `model` the detector had seen when it raised the flag
    statistic: float | None
    flagged_at: str
    linked: tuple[str, ...] = ()  # blacklight: the other clients whose queries this client's matched (or theirs it)


@dataclass(frozen=True)
class ClientDetection:
    policy: Policy | None  # the admin's override; None: the model's policy applies
    flag: Flag | None


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _stored(levels: np.ndarray) -> bytes:
    return bytes(np.rint(np.clip(levels, 0.0, 255.0)).astype(np.uint8).tobytes())


def _loaded(raw: bytes, dim: int) -> np.ndarray:
    levels: np.ndarray = np.frombuffer(raw, np.uint8).reshape(-1, dim).astype(np.float32)
    return levels


def encode_state(state: PradaState, touched: set[int] | None = None) -> dict[str, bytes]:
    """The hash fields of `state`; with `touched`, only those classes' fields (and the window)."""
    fields: dict[str, bytes] = {}
    for c, g in state.classes.items():
        if touched is not None and c not in touched:
            continue
        fields[f"g:{c}"] = _stored(g.levels)
        fields[f"s:{c}"] = np.array([(g.head, g.count, g.total, g.total_sq, g.threshold)], _SUMS).tobytes()
    fields["d"] = state.distances.astype(np.float32).tobytes()
    fields["dc"] = state.distance_classes.astype(np.int16).tobytes()
    fields["meta"] = json.dumps({"dim": state.dim, "queries": state.queries, "repeats": state.repeats,
                                 "statistic": state.statistic, "min_statistic": state.min_statistic, "alarm_at": state.alarm_at,
                                 "classes": sorted(set(state.classes) | state.stored_classes)}).encode()
    return fields


class DetectionStore:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def client_key(self, client_id: str) -> str:
        return f"{self.prefix}:detect:{client_id}"

    def state_key(self, client_id: str, model: str) -> str:
        return f"{self.prefix}:detect:{client_id}:{model}"

    # ------------------------------------------------------------------ the flag and the policy

    async def client(self, client_id: str) -> ClientDetection:
        raw = await self.redis.hmget(self.client_key(client_id), ["policy", "flagged", "reason", "model", "queries",
                                                                    "statistic", "flagged_at", "linked"])
        policy, flagged, reason, model, queries, statistic, at, linked = (_text(v) for v in raw)
        flag = None
        if flagged == "1":
            flag = Flag(reason or "", model or "", int(queries or 0), float(statistic) if statistic else None, at or "",
                        tuple(linked.split(",")) if linked else ())
        return ClientDetection(Policy(policy) if policy else None, flag)

    async def raise_flag(self, client_id: str, flag: Flag) -> bool:
        """Record a flag unless the client already has one; True when this one was recorded."""
        key = self.client_key(client_id)
        first = await self.redis.hsetnx(key, "flagged", "1")
        if not first:
            return False
        await self.redis.hset(key, mapping={"reason": flag.reason, "model": flag.model, "queries": flag.queries,
                                            "statistic": "" if flag.statistic is None else repr(flag.statistic),
                                            "flagged_at": flag.flagged_at, "linked": ",".join(flag.linked)})
        return True

    async def clear(self, client_id: str) -> None:
        """Drop the flag and every model's state of the client: it starts again from nothing. Its fingerprints stay
        in Blacklight's shared store (until they expire), but a new epoch stops them counting against it."""
        keys = [k async for k in self.redis.scan_iter(match=f"{self.client_key(client_id)}:*", count=100)]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self.client_key(client_id), "flagged", "reason", "model", "queries", "statistic", "flagged_at",
                      "linked")
            pipe.hincrby(self.client_key(client_id), "blacklight_epoch", 1)
            for k in keys:
                pipe.delete(k)
            await pipe.execute()

    async def set_policy(self, client_id: str, policy: Policy | None) -> None:
        if policy is None:
            await self.redis.hdel(self.client_key(client_id), "policy")
        else:
            await self.redis.hset(self.client_key(client_id), "policy", policy.value)

    # ------------------------------------------------------------------ PRADA's state

    async def load(self, client_id: str, model: str, dim: int, classes: set[int] | None = None,
                   redis: Any = None) -> PradaState:
        """The state (only `classes`' points when given; every class otherwise)."""
        r = redis if redis is not None else self.redis
        key = self.state_key(client_id, model)
        meta_raw = await r.hget(key, "meta")
        state = PradaState(dim)
        if meta_raw is None:
            return state
        meta = json.loads(meta_raw)
        if meta["dim"] != dim:  # the configuration changed: start again
            return state
        state.queries, state.repeats = meta["queries"], meta["repeats"]
        state.statistic, state.alarm_at = meta["statistic"], meta["alarm_at"]
        state.min_statistic = meta.get("min_statistic")
        wanted = [c for c in meta["classes"] if classes is None or c in classes]
        names = ["d", "dc"] + [f for c in wanted for f in (f"g:{c}", f"s:{c}")]
        values = [v if isinstance(v, bytes) else b"" for v in await r.hmget(key, names)]
        state.distances = np.frombuffer(values[0], np.float32).copy()
        state.distance_classes = np.frombuffer(values[1], np.int16).copy()
        for i, c in enumerate(wanted):
            points, sums = values[2 + 2 * i], values[3 + 2 * i]
            s = np.frombuffer(sums, _SUMS)[0]
            state.classes[c] = ClassSet(_loaded(points, dim), int(s["head"]),
                                        int(s["count"]), float(s["total"]), float(s["total_sq"]), float(s["threshold"]))
        state.stored_classes = set(meta["classes"])
        return state

    async def update(self, client_id: str, model: str, dim: int, labels: np.ndarray,
                     apply: Callable[[PradaState], None], attempts: int = 50) -> PradaState:
        """Load the classes `labels` touch, `apply` the batch, write them back; retried when another process
        wrote the same client's state in between."""
        key = self.state_key(client_id, model)
        touched = {int(c) for c in np.unique(labels)}
        async with self.redis.pipeline(transaction=True) as pipe:
            for attempt in range(attempts):
                try:
                    await pipe.watch(key)
                    state = await self.load(client_id, model, dim, touched, redis=pipe)
                    apply(state)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, mapping=encode_state(state, touched))  # type: ignore[arg-type]
                    await pipe.execute()
                    return state
                except WatchError:  # another process wrote this client's state: back off a little, then again
                    await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise RuntimeError(f"the detection state of {client_id}/{model} kept changing under {attempts} attempts")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
