"""The audience sync engine: diff in the warehouse, send only changes, log everything.

For one (audience, destination): read the audience model, turn rows into members
(normalised, hashed), diff against ``ops.audience_membership`` (what this destination
last accepted from us), send adds and, in ``mirror`` mode, removes, and advance the
membership only for members the destination accepted. Every run is a row in
``ops.sync_runs`` and every change a row in ``ops.sync_changes``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Destination, Member

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
"""


class SyncAborted(RuntimeError):
    """A guard stopped the sync before anything was sent."""


@dataclass
class Plan:
    members: list[Member]
    adds: list[Member]
    removes: list[Member]


def ensure_ops(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def plan(con: duckdb.DuckDBPyConnection, sync: Sync, dest: Destination) -> Plan:
    """Current members vs last accepted membership: who to add and who to remove."""
    ensure_ops(con)
    rows = con.execute(f"select * from audiences.{sync.model}").df()
    if rows[sync.primary_key].duplicated().any():
        raise SyncAborted(
            f"{sync.audience}: primary key '{sync.primary_key}' is not unique in {sync.model}"
        )
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    members = dest.members(records, sync.target)
    by_key = {m.key: m for m in members}
    current = pd.DataFrame(
        {"member_key": list(by_key), "contact_id": [m.contact_id for m in by_key.values()]}
    )
    con.register("current_members", current)
    params = [sync.audience, sync.destination]
    add_keys = con.execute(
        """select member_key from current_members
           where member_key not in (select member_key from ops.audience_membership
                                    where audience = ? and destination = ?)""",
        params,
    ).fetchall()
    remove_rows = con.execute(
        """select member_key, contact_id from ops.audience_membership
           where audience = ? and destination = ?
             and member_key not in (select member_key from current_members)""",
        params,
    ).fetchall()
    con.unregister("current_members")
    adds = [by_key[k] for (k,) in add_keys]
    removes = (
        [Member(cid, key, {"EMAIL": key}) for key, cid in remove_rows]
        if sync.mode == "mirror"
        else []
    )
    return Plan(members, adds, removes)


def _guard(sync: Sync, p: Plan, previous_size: int) -> None:
    if previous_size and not p.members:
        raise SyncAborted(
            f"{sync.audience} -> {sync.destination}: audience is empty but had "
            f"{previous_size} members last time; refusing to empty it"
        )
    if previous_size and p.removes:
        pct = 100.0 * len(p.removes) / previous_size
        if pct > sync.max_removal_pct:
            raise SyncAborted(
                f"{sync.audience} -> {sync.destination}: would remove {len(p.removes)} of "
                f"{previous_size} members ({pct:.1f}% > {sync.max_removal_pct}% allowed)"
            )


def run(
    con: duckdb.DuckDBPyConnection, sync: Sync, dest: Destination, dry_run: bool = False
) -> dict:
    """Sync one audience to one destination; return the run's counts."""
    ensure_ops(con)
    run_id = uuid.uuid4().hex
    started = datetime.now(UTC).replace(tzinfo=None)
    previous_size = con.execute(
        "select count(*) from ops.audience_membership where audience = ? and destination = ?",
        [sync.audience, sync.destination],
    ).fetchone()[0]
    summary = {
        "sync_run_id": run_id,
        "audience": sync.audience,
        "destination": sync.destination,
        "mode": sync.mode,
        "planned_adds": 0,
        "planned_removes": 0,
        "sent": 0,
        "accepted": 0,
        "rejected": 0,
        "audience_size": 0,
        "status": "running",
        "error": None,
    }
    try:
        p = plan(con, sync, dest)
        summary.update(
            planned_adds=len(p.adds), planned_removes=len(p.removes), audience_size=len(p.members)
        )
        _guard(sync, p, previous_size)
        if dry_run:
            summary["status"] = "dry_run"
            summary["plan"] = p
            return summary
        for change, items, send in (("add", p.adds, dest.add), ("remove", p.removes, dest.remove)):
            for i in range(0, len(items), dest.batch_size):
                batch = items[i : i + dest.batch_size]
                result = send(batch, sync.target)
                _apply(con, run_id, sync, change, batch, result)
                summary["sent"] += len(batch)
                summary["accepted"] += len(result.accepted)
                summary["rejected"] += len(result.rejected)
                log.info(
                    "%s -> %s: %s batch %d-%d sent, %d accepted, %d rejected",
                    sync.audience,
                    sync.destination,
                    change,
                    i + 1,
                    i + len(batch),
                    len(result.accepted),
                    len(result.rejected),
                )
        summary["status"] = "success" if not summary["rejected"] else "partial"
    except SyncAborted as exc:
        summary.update(status="aborted", error=str(exc))
        log.error("sync aborted: %s", exc)
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if summary["status"] != "dry_run":
            con.execute(
                "insert into ops.sync_runs values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    run_id,
                    sync.audience,
                    sync.destination,
                    sync.mode,
                    started,
                    datetime.now(UTC).replace(tzinfo=None),
                    summary["audience_size"],
                    summary["planned_adds"],
                    summary["planned_removes"],
                    summary["sent"],
                    summary["accepted"],
                    summary["rejected"],
                    None,
                    summary["status"],
                    summary["error"],
                ],
            )
    return summary


def _apply(con, run_id: str, sync: Sync, change: str, batch: list[Member], result) -> None:
    """Advance membership for accepted members and log every change, in one transaction."""
    accepted = set(result.accepted)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            run_id,
            sync.audience,
            sync.destination,
            m.key,
            m.contact_id,
            change,
            "accepted" if m.key in accepted else "rejected",
            result.rejected.get(m.key),
        )
        for m in batch
    ]
    con.execute("begin")
    try:
        con.executemany("insert into ops.sync_changes values (?,?,?,?,?,?,?,?)", rows)
        keys = [m for m in batch if m.key in accepted]
        if change == "add":
            con.executemany(
                "insert or replace into ops.audience_membership values (?,?,?,?,?)",
                [(sync.audience, sync.destination, m.key, m.contact_id, now) for m in keys],
            )
        else:
            con.executemany(
                "delete from ops.audience_membership where audience = ? and destination = ? "
                "and member_key = ?",
                [(sync.audience, sync.destination, m.key) for m in keys],
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def destination(name: str) -> Destination:
    if name == "meta":
        from lifecycle.activation.meta import MetaCustomAudiences  # noqa: PLC0415

        return MetaCustomAudiences()
    raise KeyError(f"unknown destination {name!r}")
