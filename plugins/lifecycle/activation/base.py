"""The small interface every destination implements, and what a send returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class Member:
    """One audience member as a destination receives it."""

    contact_id: str
    key: str  # stable id of the member at the destination (e.g. hashed email)
    identifiers: dict[str, str | None]  # schema name -> hashed/normalised value
    attributes: dict = field(default_factory=dict)


@dataclass
class SendResult:
    """What a destination accepted and rejected of one batch."""

    accepted: list[str] = field(default_factory=list)  # member keys
    rejected: dict[str, str] = field(default_factory=dict)  # member key -> vendor reason
    match_rate: float | None = None


class Destination(Protocol):
    name: str
    batch_size: int

    def members(self, rows: list[dict], target: dict) -> list[Member]:
        """Turn audience rows into members (normalise and hash identifiers)."""

    def add(self, members: list[Member], target: dict) -> SendResult:
        """Add or update members; return per-member outcome."""

    def remove(self, members: list[Member], target: dict) -> SendResult:
        """Remove members; return per-member outcome."""
