"""Planning and guards: what one sync would send, and whether it may.

1. Guards that need no plan: the latest quality gate must not have failed; the audience
   table has its primary key and identifier columns; the key is unique.
2. Read the audience with the destination's consent applied: a row is sendable only when
   every purpose the destination declares is granted in ``marts.dim_contact_consent``
   (:mod:`lifecycle.activation.consent`); the destination turns rows into members.
3. Diff in DuckDB against ``ops.audience_membership`` (what this destination last
   accepted from us): adds, updates (payload hash changed; not in ``add_only``) and
   removes. A remove of a member whose required consent is no longer granted is a
   *consent removal*: sent in every mode, never held back by a rejection's backoff and
   never counted toward ``max_removal_pct``. Other removes are sent in ``mirror`` mode
   only. Members whose last rejection is still backing off, who were given up on, or
   who are inside a job the vendor has not finished, are *deferred*.
4. Guards on the plan: an audience that is empty but was not, and ordinary removals
   above ``max_removal_pct`` of the previous membership, abort before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from lifecycle.activation import consent, store
from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Destination, Member, SyncAborted

__all__ = ["Plan", "SyncAborted", "guard", "plan", "quality_gate"]


@dataclass
class Plan:
    audience_size: int
    sendable: int
    adds: list[Member] = field(default_factory=list)
    updates: list[Member] = field(default_factory=list)
    removes: list[Member] = field(default_factory=list)
    deferred: int = 0
    previous_size: int = 0
    without_consent: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def consent_removes(self) -> list[Member]:
        return [m for m in self.removes if m.cause == "consent"]

    @property
    def ordinary_removes(self) -> list[Member]:
        return [m for m in self.removes if m.cause != "consent"]


def quality_gate(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """``(status, detail)`` of the latest quality-gate run: pass, fail or unknown."""
    if not store.table_exists(con, "ops", "quality_results"):
        return "unknown", "ops.quality_results does not exist (no quality gate has run)"
    latest = con.execute(
        "select run_id from ops.quality_results order by checked_at desc limit 1"
    ).fetchall()
    if not latest:
        return "unknown", "ops.quality_results is empty (no quality gate has run)"
    failed = con.execute(
        "select check_name, offending_rows, description from ops.quality_results "
        "where run_id = ? and status = 'fail' order by check_name",
        [latest[0][0]],
    ).fetchall()
    if failed:
        detail = "; ".join(f"{c} ({n} offending rows: {d})" for c, n, d in failed)
        return "fail", f"quality gate run {latest[0][0]} failed: {detail}"
    return "pass", f"quality gate run {latest[0][0]} passed"


def _check_contract(con, sync: Sync) -> list[str]:
    """The audience table exists with its key and identifier columns."""
    where = f"{sync.audience} -> {sync.destination}"
    if not store.table_exists(con, "audiences", sync.model):
        raise SyncAborted(f"{where}: audience table audiences.{sync.model} does not exist")
    cols = store.columns(con, "audiences", sync.model)
    missing = [c for c in (sync.primary_key, *sync.identifiers) if c not in cols]
    if missing:
        raise SyncAborted(
            f"{where}: audiences.{sync.model} lacks column(s) {', '.join(missing)} "
            f"(primary key / identifiers declared in audiences.yml)"
        )
    return cols


def _read(con, sync: Sync, dest: Destination, where: str):
    """The audience rows with ``consent_<purpose>`` columns and whether each is sendable."""
    table = f'audiences."{sync.model}"'
    pk = f'"{sync.primary_key}"'
    if not dest.purposes:  # e.g. the CRM write-back: no marketing consent applies
        return con.execute(f"select *, true as __sendable from {table}").df(), None
    try:
        flags = consent.flags(con, dest.purposes)
    except SyncAborted as exc:
        raise SyncAborted(f"{where}: {exc}") from None
    picked = ", ".join(
        f"coalesce(f.{consent.column(p)}, false) as {consent.column(p)}" for p in dest.purposes
    )
    rows = con.execute(
        f"select a.*, {picked}, coalesce(f.all_granted, false) as __sendable "
        f"from {table} a left join {flags} f on f.contact_id = a.{pk}::varchar"
    ).df()
    return rows, flags


def plan(
    con: duckdb.DuckDBPyConnection, sync: Sync, dest: Destination, now: datetime | None = None
) -> Plan:
    """Current sendable members vs last accepted membership: adds, updates, removes."""
    now = now or store.now()
    where = f"{sync.audience} -> {sync.destination}"
    _check_contract(con, sync)
    table = f'audiences."{sync.model}"'
    pk = f'"{sync.primary_key}"'
    total, distinct, nulls = con.execute(
        f"select count(*), count(distinct {pk}), count(*) - count({pk}) from {table}"
    ).fetchall()[0]
    if distinct != total:
        raise SyncAborted(
            f"{where}: primary key '{sync.primary_key}' is not unique in {sync.model} "
            f"({total} rows, {distinct} distinct keys, {nulls} null)"
        )
    rows, flags = _read(con, sync, dest, where)
    p = Plan(audience_size=int(total), sendable=0)
    p.without_consent = int((~rows["__sendable"].astype(bool)).sum())
    rows = rows[rows["__sendable"].astype(bool)].drop(columns="__sendable")
    if sync.primary_key != "contact_id":
        rows["contact_id"] = rows[sync.primary_key]
    rows["contact_id"] = rows["contact_id"].astype(str)
    current = dest.members(rows.reset_index(drop=True), sync)
    dupes = int(current.member_key.duplicated().sum())
    if dupes:
        current = current.drop_duplicates("member_key", keep="first")
        p.warnings.append(f"{dupes} rows share a member key with another row; sent once")
    warn = getattr(dest, "warnings", None)
    if warn:
        p.warnings.extend(warn)
    current = current.assign(
        payload_hash=[hashlib.md5(s.encode()).hexdigest() for s in current.payload]
    )
    p.sendable = len(current)
    membership, rejections = store.membership(con), store.rejections(con)
    params = [sync.audience, sync.destination]
    p.previous_size = con.execute(
        f"select count(*) from {membership} where audience = ? and destination = ?", params
    ).fetchall()[0][0]
    withdrawn = "(f.contact_id is not null and not f.all_granted)" if flags is not None else "false"
    joined = f"left join {flags} f on f.contact_id = m.contact_id" if flags is not None else ""
    con.register("current_members", current)
    try:
        # members whose last rejection is still backing off, or who were given up on
        con.execute(
            f"""create or replace temp table held as
                select member_key from {rejections}
                where audience = ? and destination = ?
                  and (status = 'gave_up' or (status = 'pending' and next_attempt_at > ?))""",
            [*params, now],
        )
        con.execute(
            f"""create or replace temp table prev as
                select member_key, contact_id, payload, payload_hash from {membership}
                where audience = ? and destination = ?""",
            params,
        )
        adds = con.execute(
            """select c.contact_id, c.member_key, c.payload from current_members c
               where not exists (select 1 from prev m where m.member_key = c.member_key)"""
        ).df()
        updates = con.execute(
            """select c.contact_id, c.member_key, c.payload, m.payload as previous
               from current_members c join prev m on m.member_key = c.member_key
               where c.payload_hash is distinct from m.payload_hash"""
        ).df()
        removes = con.execute(
            f"""select m.contact_id, m.member_key, m.payload, {withdrawn} as withdrawn
                from prev m {joined}
                where not exists (select 1 from current_members c
                                  where c.member_key = m.member_key)"""
        ).df()
        held = {k for (k,) in con.execute("select member_key from held").fetchall()}
    finally:
        con.unregister("current_members")
        con.execute("drop table if exists held")
        con.execute("drop table if exists prev")
    if sync.mode == "add_only":
        updates = updates.iloc[0:0]
    if sync.mode != "mirror":
        removes = removes[removes.withdrawn.astype(bool)]
    in_flight = store.in_flight(con, sync.audience, sync.destination)
    before = len(adds) + len(updates) + len(removes)
    wait = held | in_flight
    if wait:
        adds = adds[~adds.member_key.isin(wait)]
        updates = updates[~updates.member_key.isin(wait)]
        # a consent removal never waits for a rejection's backoff
        keep = ~removes.member_key.isin(in_flight) & (
            removes.withdrawn.astype(bool) | ~removes.member_key.isin(held)
        )
        removes = removes[keep]
    p.deferred = before - len(adds) - len(updates) - len(removes)
    p.adds = [Member(c, k, json.loads(pl)) for c, k, pl in adds.itertuples(index=False)]
    p.updates = [
        Member(c, k, json.loads(pl), json.loads(pr) if pr else None)
        for c, k, pl, pr in updates.itertuples(index=False)
    ]
    p.removes = [
        Member(
            c,
            k,
            json.loads(pl) if pl else {},
            json.loads(pl) if pl else None,
            "consent" if bool(w) else "left",
        )
        for c, k, pl, w in removes.itertuples(index=False)
    ]
    return p


def guard(sync: Sync, p: Plan) -> None:
    """Abort (raise :class:`SyncAborted`) on a plan that looks like broken data."""
    where = f"{sync.audience} -> {sync.destination}"
    only_withdrawals = bool(p.removes) and not p.ordinary_removes
    if (
        p.previous_size
        and not p.sendable
        and not sync.guards["allow_empty"]
        and not only_withdrawals
    ):
        raise SyncAborted(
            f"{where}: audience is empty ({p.audience_size} rows, 0 sendable) but "
            f"{p.previous_size} members were synced last time; refusing to empty it "
            f"(set guards.allow_empty: true to allow)"
        )
    ordinary = p.ordinary_removes
    if p.previous_size and ordinary:
        pct = 100.0 * len(ordinary) / p.previous_size
        if pct > sync.max_removal_pct:
            withdrawals = len(p.consent_removes)
            also = f"; {withdrawals} consent withdrawals are not counted" if withdrawals else ""
            raise SyncAborted(
                f"{where}: would remove {len(ordinary)} of {p.previous_size} members "
                f"({pct:.1f}% > {sync.max_removal_pct:g}% allowed by guards.max_removal_pct"
                f"{also})"
            )
