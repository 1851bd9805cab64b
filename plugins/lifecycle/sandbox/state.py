"""Shared state of the sandbox: the world, its clock, queued faults, what was received."""

from __future__ import annotations

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


class SandboxState:
    """The world, its clock, what vendors hold, faults queued by tests, what was received."""

    def __init__(self, world: World):
        self.world = world
        self.lock = threading.Lock()
        self.faults: dict[str, list[dict]] = {}
        self.received: dict[str, list[dict]] = {}
        self.meta_audiences: dict[str, set[tuple]] = {}
        self.hubspot_limit = RateLimit(150, 10.0)
        self.set_clock(float(world.now_ts))

    def set_clock(self, now: float) -> None:
        with self.lock:
            self.now = now
            self._cache: dict[str, object] = {}

    def cached(self, key: str, build):
        with self.lock:
            if key not in self._cache:
                self._cache[key] = build(self.world, self.now)
            return self._cache[key]

    def next_fault(self, vendor: str) -> dict | None:
        with self.lock:
            queue = self.faults.get(vendor) or []
            return queue.pop(0) if queue else None

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
