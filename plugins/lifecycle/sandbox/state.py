"""Shared state of the sandbox: the world, its clock, queued faults, what was received."""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from lifecycle.sandbox.world import World

# Fixed credentials of the local emulators (not secrets: the sandbox serves fake data).
HUBSPOT_TOKEN = "sandbox-hubspot-token"  # noqa: S105
MAILCHIMP_KEY = "sandbox-mailchimp-key-us1"
META_TOKEN = "sandbox-meta-token"  # noqa: S105
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class RateLimit:
    """A sliding window: at most ``max_requests`` per ``interval_s`` seconds."""

    max_requests: int
    interval_s: float
    hits: deque = field(default_factory=deque)

    def take(self) -> tuple[bool, int]:
        now = time.monotonic()
        while self.hits and now - self.hits[0] > self.interval_s:
            self.hits.popleft()
        if len(self.hits) >= self.max_requests:
            return False, 0
        self.hits.append(now)
        return True, self.max_requests - len(self.hits)


DATA_FAULT_KINDS = ("missing_field", "new_field", "changed_type")


def apply_data_fault(records: list[dict], fault: dict) -> list[dict]:
    """A copy of ``records`` whose first ``count`` records carry the fault.

    ``fault`` is ``{"kind": "missing_field" | "new_field" | "changed_type", "field": name,
    "value": new value (new_field / changed_type), "count": n}``. Fields inside HubSpot's
    ``properties`` are addressed by their property name.
    """
    kind, name = fault["kind"], fault["field"]
    if kind not in DATA_FAULT_KINDS:
        raise ValueError(f"unknown data fault kind {kind!r}; known: {DATA_FAULT_KINDS}")
    out = copy.deepcopy(records)
    for rec in out[: int(fault.get("count", 1))]:
        target = rec
        if "properties" in rec and name not in rec:
            target = rec["properties"]
        if kind == "missing_field":
            target.pop(name, None)
        else:
            target[name] = fault.get("value", 12345 if kind == "changed_type" else "new")
    return out


class SandboxState:
    """The world, its clock, what vendors hold, faults queued by tests, what was received."""

    def __init__(self, world: World):
        self.world = world
        self.lock = threading.RLock()  # cached builders may read other cached tables
        self.faults: dict[str, list[dict]] = {}
        self.received: dict[str, list[dict]] = {}
        self.meta_audiences: dict[str, set[tuple]] = {}
        self.hubspot_limit = RateLimit(150, 10.0)
        #: HubSpot's search endpoints have their own, tighter limit (about 4 per second).
        self.hubspot_search_limit = RateLimit(4, 1.0)
        #: A search query returns at most this many results (HubSpot: 10,000), then 400.
        self.hubspot_search_cap = 10_000
        #: Mailchimp allows 10 concurrent connections per API key (more: 429).
        self.mailchimp_max_connections = 10
        #: Extra seconds each Mailchimp call takes (a slow vendor; exposes concurrency).
        self.mailchimp_latency_s = 0.0
        #: Record-level faults (missing field, new field, changed type) per vendor.
        self.data_faults: dict[str, list[dict]] = {}
        #: What the emulators saw, for tests: requests, 429s, concurrency high-water mark.
        self.stats: dict[str, int] = {}
        self.mailchimp_inflight = 0
        self.set_clock(float(world.now_ts))

    def set_clock(self, now: float) -> None:
        with self.lock:
            self.now = now
            self._cache: dict[str, object] = {}
            self._recent: dict[str, list[str]] = {}

    def cached(self, key: str, build, *, group: str | None = None, keep: int = 0):
        """``build(world, now)``, built once per clock setting.

        With ``group`` and ``keep``, at most ``keep`` entries of that group stay cached
        (least recently used dropped): for per-campaign tables that together would not
        fit in memory at a million contacts.
        """
        with self.lock:
            if key not in self._cache:
                self._cache[key] = build(self.world, self.now)
            if group is not None:
                recent = self._recent.setdefault(group, [])
                if key in recent:
                    recent.remove(key)
                recent.append(key)
                while len(recent) > keep:
                    self._cache.pop(recent.pop(0), None)
            return self._cache[key]

    def next_fault(self, vendor: str) -> dict | None:
        with self.lock:
            queue = self.faults.get(vendor) or []
            return queue.pop(0) if queue else None

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def next_data_fault(self, vendor: str, entity: str) -> dict | None:
        """The first queued record-level fault for ``entity`` (removed from the queue)."""
        with self.lock:
            queue = self.data_faults.get(vendor) or []
            for i, f in enumerate(queue):
                if f.get("object") in (None, entity):
                    return queue.pop(i)
            return None

    def corrupt(self, vendor: str, entity: str, records: list[dict]) -> list[dict]:
        """Apply the next queued record-level fault for ``entity`` to a page of records."""
        fault = self.next_data_fault(vendor, entity) if self.data_faults.get(vendor) else None
        if not fault or not records:
            return records
        return apply_data_fault(records, fault)

    def record(self, destination: str, entry: dict) -> None:
        with self.lock:
            self.received.setdefault(destination, []).append(entry)

    def reset(self) -> None:
        with self.lock:
            self.received.clear()
            self.meta_audiences.clear()
            self.faults.clear()

    # ---- destinations written by activation (Google Ads, Mailchimp, HubSpot) ----------
    def destination(self, name: str, build):
        """The store of destination ``name``, built on first use with ``build()``."""
        with self.lock:
            stores = self.__dict__.setdefault("destinations", {})
            if name not in stores:
                stores[name] = build()
            return stores[name]

    def reject_next(self, destination: str, rejections: dict[str, str]) -> None:
        """Make ``destination`` refuse these member keys once each, with these reasons."""
        with self.lock:
            self.__dict__.setdefault("rejections", {}).setdefault(destination, {}).update(
                rejections
            )

    def take_rejection(self, destination: str, key: str) -> str | None:
        """The injected reason to refuse ``key`` (consumed), or None."""
        with self.lock:
            pending = self.__dict__.get("rejections", {}).get(destination) or {}
            return pending.pop(key, None)
