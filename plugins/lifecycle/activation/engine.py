"""The audience sync engine: diff in the warehouse, send only changes, log everything.

For one (audience, destination):

1. guards that need no data: the latest quality gate must not have failed; the audience
   table must have its primary key, identifier and consent columns; the key is unique;
2. read the audience *with the destination channel's consent applied* (email:
   ``has_email_consent and email_status = 'subscribed'``; ads: ``has_ad_consent``;
   crm write-back: no marketing consent needed) and turn rows into members
   (normalised, hashed, one canonical payload each);
3. diff in DuckDB against ``ops.audience_membership`` (what this destination last
   accepted from us): adds, updates (payload hash changed; not in ``add_only``) and, in
   ``mirror`` mode, removes of members this tool added. Members whose last rejection is
   still backing off, or who were given up on, are deferred;
4. guards on the plan: an audience that is empty but was not, and removals above
   ``max_removal_pct`` of the previous membership, abort before anything is sent;
5. send in batches; per batch, in one transaction: advance membership only for what the
   destination accepted, record rejections (with the vendor's reason, attempts and the
   next retry time) and log every record in ``ops.sync_changes``.

Every run, aborted or not, is a row in ``ops.sync_runs``. An aborted run changes no state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Destination, Member, SendResult, canonical, chunks

log = logging.getLogger(__name__)

DDL = """
create schema if not exists ops;
create table if not exists ops.audience_membership (
    audience varchar, destination varchar, member_key varchar, contact_id varchar,
    synced_at timestamp, primary key (audience, destination, member_key));
alter table ops.audience_membership add column if not exists payload varchar;
alter table ops.audience_membership add column if not exists payload_hash varchar;
create table if not exists ops.sync_runs (
    sync_run_id varchar primary key, audience varchar, destination varchar, mode varchar,
    started_at timestamp, finished_at timestamp, audience_size integer,
    planned_adds integer, planned_removes integer, sent integer, accepted integer,
    rejected integer, match_rate double, status varchar, error varchar);
alter table ops.sync_runs add column if not exists sendable integer;
alter table ops.sync_runs add column if not exists planned_updates integer;
alter table ops.sync_runs add column if not exists deferred integer;
create table if not exists ops.sync_changes (
    sync_run_id varchar, audience varchar, destination varchar, member_key varchar,
    contact_id varchar, change varchar, outcome varchar, reason varchar);
alter table ops.sync_changes add column if not exists changed_at timestamp;
create table if not exists ops.sync_rejections (
    audience varchar, destination varchar, member_key varchar, contact_id varchar,
    change varchar, reason varchar, attempts integer, first_rejected_at timestamp,
    last_rejected_at timestamp, next_attempt_at timestamp, status varchar,
    last_sync_run_id varchar, primary key (audience, destination, member_key));
"""

CONSENT = {
    "ads": ("has_ad_consent",),
    "email": ("has_email_consent", "email_status"),
    "crm": (),
}
CONSENT_SQL = {
    "ads": "coalesce(has_ad_consent::boolean, false)",
    "email": "coalesce(has_email_consent::boolean, false) and email_status = 'subscribed'",
    "crm": "true",
}


class SyncAborted(RuntimeError):
    """A guard stopped the sync before anything was sent."""


@dataclass
class Plan:
    audience_size: int
    sendable: int
    adds: list[Member] = field(default_factory=list)
    updates: list[Member] = field(default_factory=list)
    removes: list[Member] = field(default_factory=list)
    deferred: int = 0
    previous_size: int = 0
    warnings: list[str] = field(default_factory=list)


def ensure_ops(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _table_exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def _columns(con, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def quality_gate(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    """``(status, detail)`` of the latest quality-gate run: pass, fail or unknown."""
    if not _table_exists(con, "ops", "quality_results"):
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
    """The audience table exists with its key, identifier and consent columns."""
    where = f"{sync.audience} -> {sync.destination}"
    if not _table_exists(con, "audiences", sync.model):
        raise SyncAborted(f"{where}: audience table audiences.{sync.model} does not exist")
    cols = _columns(con, "audiences", sync.model)
    missing = [c for c in (sync.primary_key, *sync.identifiers) if c not in cols]
    if missing:
        raise SyncAborted(
            f"{where}: audiences.{sync.model} lacks column(s) {', '.join(missing)} "
            f"(primary key / identifiers declared in audiences.yml)"
        )
    consent = [c for c in CONSENT[sync.channel] if c not in cols]
    if consent:
        raise SyncAborted(
            f"{where}: audiences.{sync.model} has no consent column(s) "
            f"{', '.join(consent)} for the {sync.channel} channel; refusing to send "
            f"without consent"
        )
    return cols


def _membership(con) -> str:
    if _table_exists(con, "ops", "audience_membership"):
        return "ops.audience_membership"
    return (
        "(select null::varchar as audience, null::varchar as destination, "
        "null::varchar as member_key, null::varchar as contact_id, null::varchar as payload, "
        "null::varchar as payload_hash where false)"
    )


def _rejections(con) -> str:
    if _table_exists(con, "ops", "sync_rejections"):
        return "ops.sync_rejections"
    return (
        "(select null::varchar as audience, null::varchar as destination, "
        "null::varchar as member_key, null::varchar as status, "
        "null::timestamp as next_attempt_at where false)"
    )


def plan(
    con: duckdb.DuckDBPyConnection, sync: Sync, dest: Destination, now: datetime | None = None
) -> Plan:
    """Current sendable members vs last accepted membership: adds, updates, removes."""
    now = now or _now()
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
    rows = con.execute(f"select * from {table} where {CONSENT_SQL[sync.channel]}").df()
    if sync.primary_key != "contact_id":
        rows["contact_id"] = rows[sync.primary_key]
    rows["contact_id"] = rows["contact_id"].astype(str)
    current = dest.members(rows, sync)
    dupes = int(current.member_key.duplicated().sum())
    p = Plan(audience_size=int(total), sendable=0)
    if dupes:
        current = current.drop_duplicates("member_key", keep="first")
        p.warnings.append(f"{dupes} rows share a member key with another row; sent once")
    current = current.assign(
        payload_hash=[hashlib.md5(s.encode()).hexdigest() for s in current.payload]
    )
    p.sendable = len(current)
    membership, rejections = _membership(con), _rejections(con)
    params = [sync.audience, sync.destination]
    p.previous_size = con.execute(
        f"select count(*) from {membership} where audience = ? and destination = ?", params
    ).fetchall()[0][0]
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
            """select m.contact_id, m.member_key, m.payload from prev m
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
        removes = removes.iloc[0:0]
    if held:
        before = len(adds) + len(updates) + len(removes)
        adds = adds[~adds.member_key.isin(held)]
        updates = updates[~updates.member_key.isin(held)]
        removes = removes[~removes.member_key.isin(held)]
        p.deferred = before - len(adds) - len(updates) - len(removes)
    p.adds = [Member(c, k, json.loads(pl)) for c, k, pl in adds.itertuples(index=False)]
    p.updates = [
        Member(c, k, json.loads(pl), json.loads(pr) if pr else None)
        for c, k, pl, pr in updates.itertuples(index=False)
    ]
    p.removes = [
        Member(c, k, json.loads(pl) if pl else {}, json.loads(pl) if pl else None)
        for c, k, pl in removes.itertuples(index=False)
    ]
    return p


def _guard(sync: Sync, p: Plan) -> None:
    where = f"{sync.audience} -> {sync.destination}"
    if p.previous_size and not p.sendable and not sync.guards["allow_empty"]:
        raise SyncAborted(
            f"{where}: audience is empty ({p.audience_size} rows, 0 sendable) but "
            f"{p.previous_size} members were synced last time; refusing to empty it "
            f"(set guards.allow_empty: true to allow)"
        )
    if p.previous_size and p.removes:
        pct = 100.0 * len(p.removes) / p.previous_size
        if pct > sync.max_removal_pct:
            raise SyncAborted(
                f"{where}: would remove {len(p.removes)} of {p.previous_size} members "
                f"({pct:.1f}% > {sync.max_removal_pct:g}% allowed by guards.max_removal_pct)"
            )


def run(
    con: duckdb.DuckDBPyConnection,
    sync: Sync,
    dest: Destination,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict:
    """Sync one audience to one destination; return the run's counts (and plan if dry)."""
    now = now or _now()
    if not dry_run:
        ensure_ops(con)
    run_id = uuid.uuid4().hex
    started = _now()
    summary = {
        "sync_run_id": run_id,
        "audience": sync.audience,
        "destination": sync.destination,
        "mode": sync.mode,
        "audience_size": 0,
        "sendable": 0,
        "planned_adds": 0,
        "planned_updates": 0,
        "planned_removes": 0,
        "deferred": 0,
        "sent": 0,
        "accepted": 0,
        "rejected": 0,
        "match_rate": None,
        "status": "running",
        "error": None,
        "warnings": [],
    }
    try:
        if sync.guards["require_quality_gate"]:
            status, detail = quality_gate(con)
            if status == "fail":
                raise SyncAborted(f"{sync.audience} -> {sync.destination}: {detail}")
            if status == "unknown":
                summary["warnings"].append(f"quality gate unknown: {detail}; proceeding")
                log.warning("%s -> %s: %s; proceeding", sync.audience, sync.destination, detail)
        p = plan(con, sync, dest, now)
        summary["warnings"] += p.warnings
        summary.update(
            audience_size=p.audience_size,
            sendable=p.sendable,
            planned_adds=len(p.adds),
            planned_updates=len(p.updates),
            planned_removes=len(p.removes),
            deferred=p.deferred,
        )
        _guard(sync, p)
        if dry_run:
            summary["status"] = "dry_run"
            summary["plan"] = p
            return summary
        if p.adds or p.updates or p.removes:
            dest.prepare(sync)
        rates = []
        for change, items, send in (
            ("remove", p.removes, dest.remove),
            ("update", p.updates, dest.update),
            ("add", p.adds, dest.add),
        ):
            for batch in chunks(items, dest.batch_size):
                result = send(batch, sync)
                _apply(con, run_id, sync, change, batch, result, now)
                if result.match_rate is not None:
                    rates.append(result.match_rate)
                summary["sent"] += len(batch)
                summary["accepted"] += len(result.accepted)
                summary["rejected"] += len(result.rejected)
                log.info(
                    "%s -> %s: %s %d sent, %d accepted, %d rejected (%d/%d of this change)",
                    sync.audience,
                    sync.destination,
                    change,
                    len(batch),
                    len(result.accepted),
                    len(result.rejected),
                    summary["sent"],
                    len(p.adds) + len(p.updates) + len(p.removes),
                )
        if rates:
            summary["match_rate"] = sum(rates) / len(rates)
        summary["status"] = "success" if not summary["rejected"] else "partial"
    except SyncAborted as exc:
        summary.update(status="aborted", error=str(exc))
        log.error("sync aborted: %s", exc)
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if not dry_run:
            _log_run(con, summary, sync, started)
    return summary


def _log_run(con, summary: dict, sync: Sync, started: datetime) -> None:
    cols = (
        "sync_run_id, audience, destination, mode, started_at, finished_at, audience_size, "
        "sendable, planned_adds, planned_updates, planned_removes, deferred, sent, accepted, "
        "rejected, match_rate, status, error"
    )
    con.execute(
        f"insert into ops.sync_runs ({cols}) values ({','.join('?' * 18)})",
        [
            summary["sync_run_id"],
            sync.audience,
            sync.destination,
            sync.mode,
            started,
            _now(),
            summary["audience_size"],
            summary["sendable"],
            summary["planned_adds"],
            summary["planned_updates"],
            summary["planned_removes"],
            summary["deferred"],
            summary["sent"],
            summary["accepted"],
            summary["rejected"],
            summary["match_rate"],
            summary["status"],
            summary["error"],
        ],
    )


def _apply(
    con,
    run_id: str,
    sync: Sync,
    change: str,
    batch: list[Member],
    result: SendResult,
    now: datetime,
) -> None:
    """Advance membership for accepted members, record rejections, log every change."""
    accepted = set(result.accepted)
    unknown = [m.key for m in batch if m.key not in accepted and m.key not in result.rejected]
    for key in unknown:  # a destination that says nothing about a member did not accept it
        result.rejected[key] = "no outcome reported by the destination"
    changes = pd.DataFrame(
        {
            "sync_run_id": run_id,
            "audience": sync.audience,
            "destination": sync.destination,
            "member_key": [m.key for m in batch],
            "contact_id": [m.contact_id for m in batch],
            "change": change,
            "outcome": ["accepted" if m.key in accepted else "rejected" for m in batch],
            "reason": [result.rejected.get(m.key) for m in batch],
            "changed_at": now,
        }
    )
    ok = [m for m in batch if m.key in accepted]
    done = pd.DataFrame(
        {
            "member_key": [m.key for m in ok],
            "contact_id": [m.contact_id for m in ok],
            "payload": [canonical(m.payload) for m in ok],
        }
    )
    done["payload_hash"] = [hashlib.md5(s.encode()).hexdigest() for s in done.payload]
    rejected = _rejection_rows(con, run_id, sync, change, batch, result, now)
    con.execute("begin")
    try:
        con.register("batch_changes", changes)
        con.execute(
            "insert into ops.sync_changes (sync_run_id, audience, destination, member_key, "
            "contact_id, change, outcome, reason, changed_at) select * from batch_changes"
        )
        if len(done):
            con.register("batch_done", done)
            params = [sync.audience, sync.destination]
            if change == "remove":
                con.execute(
                    "delete from ops.audience_membership where audience = ? and destination = ? "
                    "and member_key in (select member_key from batch_done)",
                    params,
                )
            else:
                con.execute(
                    "insert or replace into ops.audience_membership (audience, destination, "
                    "member_key, contact_id, synced_at, payload, payload_hash) "
                    "select ?, ?, member_key, contact_id, ?, payload, payload_hash from batch_done",
                    [*params, now],
                )
            con.execute(
                "update ops.sync_rejections set status = 'resolved', last_sync_run_id = ? "
                "where audience = ? and destination = ? and status <> 'resolved' "
                "and member_key in (select member_key from batch_done)",
                [run_id, *params],
            )
        if len(rejected):
            con.register("batch_rejected", rejected)
            con.execute(
                "insert or replace into ops.sync_rejections (audience, destination, "
                "member_key, contact_id, change, reason, attempts, first_rejected_at, "
                "last_rejected_at, next_attempt_at, status, last_sync_run_id) "
                "select * from batch_rejected"
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    finally:
        for name in ("batch_changes", "batch_done", "batch_rejected"):
            con.unregister(name)


def _rejection_rows(con, run_id, sync, change, batch, result, now) -> pd.DataFrame:
    """Rejected members with attempts counted and the next retry time (backoff doubles)."""
    rejected = [m for m in batch if m.key in result.rejected]
    if not rejected:
        return pd.DataFrame()
    keys = pd.DataFrame({"member_key": [m.key for m in rejected]})
    con.register("rejected_keys", keys)
    try:
        before = {
            k: (a, f)
            for k, a, f in con.execute(
                "select member_key, attempts, first_rejected_at from ops.sync_rejections "
                "where audience = ? and destination = ? and status = 'pending' "
                "and member_key in (select member_key from rejected_keys)",
                [sync.audience, sync.destination],
            ).fetchall()
        }
    finally:
        con.unregister("rejected_keys")
    backoff = float(sync.guards["retry_backoff_minutes"])
    limit = int(sync.guards["max_attempts"])
    rows = []
    for m in rejected:
        attempts, first = before.get(m.key, (0, now))
        attempts += 1
        gave_up = attempts >= limit
        rows.append(
            {
                "audience": sync.audience,
                "destination": sync.destination,
                "member_key": m.key,
                "contact_id": m.contact_id,
                "change": change,
                "reason": result.rejected[m.key],
                "attempts": attempts,
                "first_rejected_at": first,
                "last_rejected_at": now,
                "next_attempt_at": now + timedelta(minutes=backoff * 2 ** (attempts - 1)),
                "status": "gave_up" if gave_up else "pending",
                "last_sync_run_id": run_id,
            }
        )
        if gave_up:
            log.error(
                "%s -> %s: giving up on %s after %d rejected attempts: %s",
                sync.audience,
                sync.destination,
                m.key,
                attempts,
                result.rejected[m.key],
            )
    return pd.DataFrame(rows)


DESTINATION_CLASSES = {
    "meta": ("lifecycle.activation.meta", "MetaCustomAudiences"),
    "google_ads": ("lifecycle.activation.google_ads", "GoogleAdsCustomerMatch"),
    "mailchimp": ("lifecycle.activation.mailchimp", "MailchimpAudience"),
    "hubspot": ("lifecycle.activation.hubspot", "HubSpotWriteBack"),
}


def destination(name: str) -> Destination:
    """The destination module for ``name`` (imported lazily: each talks HTTP on demand)."""
    import importlib  # noqa: PLC0415

    if name not in DESTINATION_CLASSES:
        raise KeyError(f"unknown destination {name!r}; known: {', '.join(DESTINATION_CLASSES)}")
    module, cls = DESTINATION_CLASSES[name]
    return getattr(importlib.import_module(module), cls)()
