"""The activation's state in the warehouse: every ``ops`` table it owns, in one place.

| table | one row per |
|---|---|
| ``ops.audience_membership`` | member a destination accepted: key, contact, payload, hash |
| ``ops.sync_runs`` | run of one (audience, destination): counts, status, error |
| ``ops.sync_changes`` | record change sent: run, member, change, outcome, reason |
| ``ops.sync_rejections`` | rejected member: reason, attempts, next try, status |
| ``ops.sync_jobs`` | batch handed to an asynchronous destination (Google Ads job) |
| ``ops.erasure_deliveries`` | (erasure, destination): what was sent, its status |

``ops.erasures`` belongs to the warehouse side (``lifecycle.erasure``, Contract B); this
module only reads it and updates its ``status``.

:func:`ensure` creates the tables and applies the migrations (added columns) in order;
it is idempotent and runs before every write.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from lifecycle.activation.base import Member, SendResult, canonical

log = logging.getLogger(__name__)

DDL = """
create schema if not exists ops;
create table if not exists ops.audience_membership (
    audience varchar, destination varchar, member_key varchar, contact_id varchar,
    synced_at timestamp, primary key (audience, destination, member_key));
create table if not exists ops.sync_runs (
    sync_run_id varchar primary key, audience varchar, destination varchar, mode varchar,
    started_at timestamp, finished_at timestamp, audience_size integer,
    planned_adds integer, planned_removes integer, sent integer, accepted integer,
    rejected integer, match_rate double, status varchar, error varchar);
create table if not exists ops.sync_changes (
    sync_run_id varchar, audience varchar, destination varchar, member_key varchar,
    contact_id varchar, change varchar, outcome varchar, reason varchar);
create table if not exists ops.sync_rejections (
    audience varchar, destination varchar, member_key varchar, contact_id varchar,
    change varchar, reason varchar, attempts integer, first_rejected_at timestamp,
    last_rejected_at timestamp, next_attempt_at timestamp, status varchar,
    last_sync_run_id varchar, primary key (audience, destination, member_key));
create table if not exists ops.sync_jobs (
    job_id varchar primary key, kind varchar, sync_run_id varchar, audience varchar,
    destination varchar, change varchar, job varchar, members varchar,
    submitted_at timestamp, finished_at timestamp, status varchar, detail varchar);
create table if not exists ops.erasure_deliveries (
    erasure_id varchar, destination varchar, status varchar, members integer,
    detail varchar, job_id varchar, attempted_at timestamp,
    primary key (erasure_id, destination));
"""

#: Added columns, oldest first (a warehouse from an earlier version gains them).
MIGRATIONS = (
    "alter table ops.audience_membership add column if not exists payload varchar",
    "alter table ops.audience_membership add column if not exists payload_hash varchar",
    "alter table ops.sync_runs add column if not exists sendable integer",
    "alter table ops.sync_runs add column if not exists planned_updates integer",
    "alter table ops.sync_runs add column if not exists deferred integer",
    "alter table ops.sync_changes add column if not exists changed_at timestamp",
    "alter table ops.sync_runs add column if not exists consent_removes integer",
    "alter table ops.sync_runs add column if not exists warnings varchar",
    "alter table ops.sync_changes add column if not exists cause varchar",
)

#: ops tables that may hold a contact's plain id (scrubbed on erasure).
PERSONAL = ("audience_membership", "sync_changes", "sync_rejections", "sync_jobs")


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    """Create the activation's ops tables and apply every migration (idempotent)."""
    con.execute(DDL)
    for statement in MIGRATIONS:
        con.execute(statement)


def now() -> datetime:
    from datetime import UTC  # noqa: PLC0415

    return datetime.now(UTC).replace(tzinfo=None)


def table_exists(con, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()[0][0]
    )


def columns(con, schema: str, table: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def membership(con) -> str:
    """``ops.audience_membership``, or an empty relation of its shape before the first run."""
    if table_exists(con, "ops", "audience_membership"):
        return "ops.audience_membership"
    return (
        "(select null::varchar as audience, null::varchar as destination, "
        "null::varchar as member_key, null::varchar as contact_id, null::varchar as payload, "
        "null::varchar as payload_hash where false)"
    )


def rejections(con) -> str:
    if table_exists(con, "ops", "sync_rejections"):
        return "ops.sync_rejections"
    return (
        "(select null::varchar as audience, null::varchar as destination, "
        "null::varchar as member_key, null::varchar as status, "
        "null::timestamp as next_attempt_at where false)"
    )


def in_flight(con, audience: str, destination: str) -> set[str]:
    """Member keys of this sync inside a job that has not finished (never sent twice)."""
    if not table_exists(con, "ops", "sync_jobs"):
        return set()
    rows = con.execute(
        "select members from ops.sync_jobs where audience = ? and destination = ? "
        "and status = 'running'",
        [audience, destination],
    ).fetchall()
    return {m["key"] for (members,) in rows for m in json.loads(members or "[]")}


# ---- runs ----------------------------------------------------------------------------
RUN_COLUMNS = (
    "sync_run_id",
    "audience",
    "destination",
    "mode",
    "started_at",
    "finished_at",
    "audience_size",
    "sendable",
    "planned_adds",
    "planned_updates",
    "planned_removes",
    "consent_removes",
    "deferred",
    "sent",
    "accepted",
    "rejected",
    "match_rate",
    "status",
    "error",
    "warnings",
)


def log_run(con, summary: dict, started: datetime) -> None:
    """One row of ``ops.sync_runs`` for a run (any status)."""
    values = {
        **summary,
        "started_at": started,
        "finished_at": now(),
        "warnings": "; ".join(summary.get("warnings") or []) or None,
    }
    con.execute(
        f"insert or replace into ops.sync_runs ({', '.join(RUN_COLUMNS)}) "
        f"values ({', '.join('?' * len(RUN_COLUMNS))})",
        [values.get(c) for c in RUN_COLUMNS],
    )


# ---- one batch's outcome ---------------------------------------------------------------
def apply_batch(
    con,
    run_id: str,
    sync,
    change: str,
    batch: list[Member],
    result: SendResult,
    at: datetime,
) -> None:
    """Advance membership for accepted members, record rejections, log every change.

    One transaction: a batch is either recorded whole or not at all.
    """
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
            "changed_at": at,
            "cause": [m.cause for m in batch],
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
    rejected = _rejection_rows(con, run_id, sync, change, batch, result, at)
    con.execute("begin")
    try:
        con.register("batch_changes", changes)
        con.execute(
            "insert into ops.sync_changes (sync_run_id, audience, destination, member_key, "
            "contact_id, change, outcome, reason, changed_at, cause) "
            "select * from batch_changes"
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
                    [*params, at],
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


def _rejection_rows(con, run_id, sync, change, batch, result, at) -> pd.DataFrame:
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
        attempts, first = before.get(m.key, (0, at))
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
                "last_rejected_at": at,
                "next_attempt_at": at + timedelta(minutes=backoff * 2 ** (attempts - 1)),
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


# ---- asynchronous jobs -------------------------------------------------------------------
def member_json(members: list[Member]) -> str:
    return json.dumps(
        [
            {
                "contact_id": m.contact_id,
                "key": m.key,
                "payload": m.payload,
                "previous": m.previous,
                "cause": m.cause,
            }
            for m in members
        ],
        separators=(",", ":"),
        default=str,
    )


def members_from_json(text: str | None) -> list[Member]:
    return [
        Member(m["contact_id"], m["key"], m["payload"], m.get("previous"), m.get("cause"))
        for m in json.loads(text or "[]")
    ]


def record_job(
    con,
    *,
    job_id: str,
    kind: str,
    sync_run_id: str | None,
    audience: str | None,
    destination: str,
    change: str,
    job: dict,
    members: list[Member],
    result: SendResult,
    at: datetime,
) -> None:
    """Keep a submitted job (and what was already refused at submission) until it ends."""
    detail = json.dumps({"rejected": result.rejected}) if result.rejected else None
    con.execute(
        "insert or replace into ops.sync_jobs (job_id, kind, sync_run_id, audience, "
        "destination, change, job, members, submitted_at, finished_at, status, detail) "
        "values (?, ?, ?, ?, ?, ?, ?, ?, ?, null, 'running', ?)",
        [
            job_id,
            kind,
            sync_run_id,
            audience,
            destination,
            change,
            json.dumps(job),
            member_json(members),
            at,
            detail,
        ],
    )


def running_jobs(con) -> list[dict]:
    if not table_exists(con, "ops", "sync_jobs"):
        return []
    cur = con.execute(
        "select job_id, kind, sync_run_id, audience, destination, change, job, members, "
        "detail, submitted_at from ops.sync_jobs where status = 'running' order by submitted_at"
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def finish_job(con, job_id: str, status: str, *, keep_members: bool = False) -> None:
    """Mark a job ended; its member list (plain contact ids) is dropped unless kept."""
    con.execute(
        "update ops.sync_jobs set status = ?, finished_at = ?, "
        "members = case when ? then members else null end where job_id = ?",
        [status, now(), keep_members, job_id],
    )


def add_to_run(con, sync_run_id: str, accepted: int, rejected: int, rate: float | None) -> None:
    """Fold a finished job's outcome into its run's counts and status."""
    con.execute(
        """update ops.sync_runs set
               accepted = coalesce(accepted, 0) + ?,
               rejected = coalesce(rejected, 0) + ?,
               match_rate = coalesce(?, match_rate),
               finished_at = ?
           where sync_run_id = ?""",
        [accepted, rejected, rate, now(), sync_run_id],
    )
    pending = con.execute(
        "select count(*) from ops.sync_jobs where sync_run_id = ? and status = 'running'",
        [sync_run_id],
    ).fetchall()[0][0]
    if not pending:
        con.execute(
            "update ops.sync_runs set status = case when rejected > 0 then 'partial' "
            "else 'success' end where sync_run_id = ? and status = 'submitted'",
            [sync_run_id],
        )
