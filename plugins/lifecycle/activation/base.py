"""The small interface every destination implements, and what a send returns.

A destination turns audience rows into *members*: a stable key at the destination
(hashed email, subscriber hash, CRM id) and the exact payload that represents the member
there. The engine stores the payload it last saw accepted, so a changed payload is an
update and an unchanged one is never sent again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from lifecycle.activation.audiences import Sync


@dataclass
class Member:
    """One audience member as a destination receives it."""

    contact_id: str
    key: str  # stable id of the member at the destination (e.g. hashed email)
    payload: dict  # what the destination holds for this member (hashed ids, properties)
    previous: dict | None = None  # last accepted payload (updates and removes)


@dataclass
class SendResult:
    """What a destination accepted and rejected of one batch."""

    accepted: list[str] = field(default_factory=list)  # member keys
    rejected: dict[str, str] = field(default_factory=dict)  # member key -> vendor reason
    match_rate: float | None = None


class Destination(Protocol):
    name: str
    batch_size: int

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        """Audience rows (consent already applied) -> ``contact_id, member_key, payload``.

        ``payload`` is the member's canonical JSON (see :func:`canonical`); rows that
        cannot be sent (no valid identifier) are left out.
        """

    def prepare(self, sync: Sync) -> None:
        """Once before sending (e.g. create missing custom properties)."""

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        """Add new members; return the per-member outcome."""

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        """Send members whose payload changed since last accepted."""

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        """Remove members this tool added (``mirror`` mode)."""


def canonical(payload: dict) -> str:
    """The stable JSON text of a payload (stored, hashed and diffed by the engine)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def chunks(items: list, size: int):
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
