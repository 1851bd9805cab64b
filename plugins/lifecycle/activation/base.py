"""The interface every destination implements, and what a send returns.

A destination is one class in one module (``meta.py``, ``google_ads.py``, …) listed in
:mod:`lifecycle.activation.registry`. The class *declares* what the rest of the
activation reads and nobody restates:

- ``channel``: ``ads``, ``email`` or ``crm`` (documentation and the dry-run report);
- ``target_keys`` / ``optional_target_keys``: what ``include/audiences.yml`` must / may
  give per (audience, destination) — validated on load;
- ``identifiers`` (audience columns it can send) and ``match_on`` (of which it needs at
  least one);
- ``purposes``: the consent purposes of Contract A (``email_marketing``,
  ``ad_user_data``, ``ad_personalization``) that must all be granted in
  ``marts.dim_contact_consent`` before a contact is sent;
- ``asynchronous``: the vendor answers with a job to wait for (Google Ads), so the
  engine records the batch and :func:`lifecycle.activation.engine.finish_jobs` applies
  its outcome later, without a worker waiting.

It turns audience rows into *members*: a stable key at the destination (hashed email,
subscriber hash, CRM id) and the exact payload that represents the member there. The
engine stores the payload it last saw accepted, so a changed payload is an update and an
unchanged one is never sent again. A destination that only normalises and hashes
identifiers says so as one SQL query (:meth:`Destination.members_sql`): the engine then
builds the members of a whole audience inside DuckDB and never reads it into Python.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import duckdb

from lifecycle.activation import hashing

if TYPE_CHECKING:
    import pandas as pd

    from lifecycle.activation.audiences import Sync


class SyncAborted(RuntimeError):
    """A guard stopped the sync before anything was sent."""


@dataclass
class Member:
    """One audience member as a destination receives it."""

    contact_id: str
    key: str  # stable id of the member at the destination (e.g. hashed email)
    payload: dict  # what the destination holds for this member (hashed ids, properties)
    previous: dict | None = None  # last accepted payload (updates and removes)
    #: why a remove is sent: ``left`` (no longer in the audience) or ``consent`` (a
    #: purpose the destination requires is no longer granted: always sent, never
    #: counted toward ``max_removal_pct``)
    cause: str | None = None


@dataclass
class SendResult:
    """What a destination accepted and rejected of one batch.

    An asynchronous destination may instead hand back ``job`` (JSON-able: what it needs
    to ask the vendor later); ``accepted`` / ``rejected`` then only hold what was
    already decided when the job was submitted (e.g. partial failures).
    """

    accepted: list[str] = field(default_factory=list)  # member keys
    rejected: dict[str, str] = field(default_factory=dict)  # member key -> vendor reason
    match_rate: float | None = None
    job: dict | None = None


class Destination:
    """Base class of the destinations; subclasses set the declarations below."""

    name: ClassVar[str]
    channel: ClassVar[str]
    target_keys: ClassVar[tuple[str, ...]] = ()
    optional_target_keys: ClassVar[tuple[str, ...]] = ()
    identifiers: ClassVar[frozenset[str]] = frozenset()
    match_on: ClassVar[frozenset[str]] = frozenset()
    purposes: ClassVar[tuple[str, ...]] = ()
    batch_size: ClassVar[int] = 1000
    asynchronous: ClassVar[bool] = False
    #: where a member's payload holds the email, for matching an erasure's email hash:
    #: ``(field, "sha256")`` (already hashed per Contract B) or ``(field, "plain")``
    payload_email: ClassVar[tuple[str, str] | None] = None

    @classmethod
    def check_target(cls, target: dict) -> str | None:
        """What is wrong with a declared target beyond missing keys (None: fine)."""
        return None

    def members(self, rows: pd.DataFrame, sync: Sync) -> pd.DataFrame:
        """Audience rows (consent already applied) -> ``contact_id, member_key, payload``.

        ``payload`` is the member's canonical JSON (see :func:`canonical`); rows that
        cannot be sent (no valid identifier) are left out. ``rows`` carries, per purpose
        the destination requires, a boolean column ``consent_<purpose>`` read from the
        consent model. By default :meth:`members_sql` run over the frame.
        """
        sql = self.members_sql("rows", sync)
        if sql is None:
            raise NotImplementedError(f"{self.name} gives neither members() nor members_sql()")
        con = duckdb.connect()
        try:
            hashing.install(con)
            con.register("rows", rows)
            return con.execute(sql).df()
        finally:
            con.close()

    def members_sql(self, rows: str, sync: Sync) -> str | None:
        """:meth:`members` as one DuckDB query over the relation ``rows`` (None: none).

        The query may use the normalisation macros of
        :func:`lifecycle.activation.hashing.install`; its ``payload`` must be byte for byte
        what :func:`canonical` writes for the same dict (the engine compares payload hashes
        computed in DuckDB with those of the payloads it stored after a send).
        """
        return None

    def prepare(self, sync: Sync) -> None:
        """Once before sending (e.g. create missing custom properties)."""

    def add(self, members: list[Member], sync: Sync) -> SendResult:
        """Add new members; return the per-member outcome."""
        raise NotImplementedError

    def update(self, members: list[Member], sync: Sync) -> SendResult:
        """Send members whose payload changed since last accepted."""
        raise NotImplementedError

    def remove(self, members: list[Member], sync: Sync) -> SendResult:
        """Remove members this tool added (``mirror`` mode, or a consent withdrawal)."""
        raise NotImplementedError

    def erase(self, members: list[Member], sync: Sync, origin: str) -> SendResult:
        """Send an erasure (Contract B) of these members; ``origin`` as in ops.erasures.

        Default: the same as a removal. Destinations that hold more than an audience
        membership (an email list, the CRM) override it.
        """
        for m in members:
            m.cause = "erasure"
        return self.remove(members, sync)

    @classmethod
    def erases(cls, origin: str) -> bool:
        """Whether an erasure of this origin is sent here (False: recorded as skipped)."""
        return True

    def poll(self, job: dict) -> SendResult | None:
        """An asynchronous destination: the outcome of ``job``, or None while it runs."""
        raise NotImplementedError(f"{self.name} is not asynchronous")


def canonical(payload: dict) -> str:
    """The stable JSON text of a payload (stored, hashed and diffed by the engine)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def chunks(items: list, size: int):
    """Consecutive slices of at most ``size`` items."""
    for i in range(0, len(items), size):
        yield items[i : i + size]
