"""The audience sync run: plan, guard, send only changes, record everything.

For one (audience, destination) :func:`run` plans and guards
(:mod:`lifecycle.activation.planning`), then sends removes, updates and adds in the
destination's batch size. Per batch, in one transaction
(:mod:`lifecycle.activation.store`): membership advances only for what the destination
accepted, rejections are recorded (the vendor's reason, attempts, the next retry time)
and every record is logged in ``ops.sync_changes``.

An asynchronous destination (Google Ads: an offline user data job runs for minutes to
hours) hands back a job per batch instead of an outcome. The run records it in
``ops.sync_jobs`` and ends with status ``submitted``; :func:`finish_jobs` later asks the
vendor once per running job and applies the outcome of those that ended. The nightly DAG
calls it from a sensor in ``reschedule`` mode, so no worker slot is held while a job
runs; ``lifecycle sync`` calls it in a loop.

Every run, aborted or not, is a row in ``ops.sync_runs``. An aborted run changes no state
— except that removals caused by a consent withdrawal are sent even when a guard aborts
the rest (the guards protect against broken data, not against a person's withdrawal).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from types import SimpleNamespace

import duckdb

from lifecycle.activation import registry, store
from lifecycle.activation.audiences import Sync
from lifecycle.activation.base import Destination, SendResult, SyncAborted, chunks
from lifecycle.activation.planning import Plan, guard, plan, quality_gate

__all__ = [
    "Plan",
    "SyncAborted",
    "destination",
    "ensure_ops",
    "finish_jobs",
    "plan",
    "quality_gate",
    "run",
    "wait_for_jobs",
]

log = logging.getLogger(__name__)

ensure_ops = store.ensure


def destination(name: str) -> Destination:
    """A new instance of the destination ``name`` (from the registry)."""
    return registry.create(name)


def run(
    con: duckdb.DuckDBPyConnection,
    sync: Sync,
    dest: Destination,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict:
    """Sync one audience to one destination; return the run's counts (and plan if dry)."""
    now = now or store.now()
    if not dry_run:
        store.ensure(con)
    run_id = uuid.uuid4().hex
    started = store.now()
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
        "consent_removes": 0,
        "deferred": 0,
        "sent": 0,
        "accepted": 0,
        "rejected": 0,
        "match_rate": None,
        "jobs": 0,
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
        for w in p.warnings:
            log.warning("%s -> %s: %s", sync.audience, sync.destination, w)
        summary.update(
            audience_size=p.audience_size,
            sendable=p.sendable,
            planned_adds=len(p.adds),
            planned_updates=len(p.updates),
            planned_removes=len(p.removes),
            consent_removes=len(p.consent_removes),
            deferred=p.deferred,
        )
        try:
            guard(sync, p)
        except SyncAborted as exc:
            if dry_run or not p.consent_removes:
                raise
            # the guard protects against broken data; a withdrawal is sent regardless
            dest.prepare(sync)
            _send(con, run_id, sync, dest, [("remove", p.consent_removes)], now, summary)
            raise SyncAborted(
                f"{exc}; the {len(p.consent_removes)} consent withdrawals were still removed"
            ) from None
        if dry_run:
            summary["status"] = "dry_run"
            summary["plan"] = p
            return summary
        if p.adds or p.updates or p.removes:
            dest.prepare(sync)
        _send(
            con,
            run_id,
            sync,
            dest,
            [("remove", p.removes), ("update", p.updates), ("add", p.adds)],
            now,
            summary,
        )
        if summary["jobs"]:
            summary["status"] = "submitted"
        else:
            summary["status"] = "success" if not summary["rejected"] else "partial"
    except SyncAborted as exc:
        summary.update(status="aborted", error=str(exc))
        log.error("sync aborted: %s", exc)
    except Exception as exc:
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if not dry_run:
            store.log_run(con, summary, started)
    return summary


def _send(con, run_id, sync: Sync, dest: Destination, changes, now, summary: dict) -> None:
    """Send each change in the destination's batch size; record every batch."""
    rates = []
    total = sum(len(items) for _, items in changes)
    sends = {"remove": dest.remove, "update": dest.update, "add": dest.add}
    for change, items in changes:
        for batch in chunks(items, dest.batch_size):
            result = sends[change](batch, sync)
            summary["sent"] += len(batch)
            if result.job is not None:
                _submitted(con, run_id, sync, change, batch, result, now)
                summary["jobs"] += 1
                log.info(
                    "%s -> %s: %s %d submitted as job %s (%d/%d of this run)",
                    sync.audience,
                    sync.destination,
                    change,
                    len(batch),
                    result.job.get("id"),
                    summary["sent"],
                    total,
                )
                continue
            store.apply_batch(con, run_id, sync, change, batch, result, now)
            if result.match_rate is not None:
                rates.append(result.match_rate)
            summary["accepted"] += len(result.accepted)
            summary["rejected"] += len(result.rejected)
            log.info(
                "%s -> %s: %s %d sent, %d accepted, %d rejected (%d/%d of this run)",
                sync.audience,
                sync.destination,
                change,
                len(batch),
                len(result.accepted),
                len(result.rejected),
                summary["sent"],
                total,
            )
    if rates:
        summary["match_rate"] = sum(rates) / len(rates)


def _submitted(con, run_id, sync: Sync, change, batch, result: SendResult, now) -> None:
    job = {
        **result.job,
        "_sync": {
            "audience": sync.audience,
            "destination": sync.destination,
            "guards": sync.guards,
        },
    }
    store.record_job(
        con,
        job_id=str(result.job["id"]),
        kind="sync",
        sync_run_id=run_id,
        audience=sync.audience,
        destination=sync.destination,
        change=change,
        job=job,
        members=batch,
        result=result,
        at=now,
    )


def finish_jobs(con: duckdb.DuckDBPyConnection, now: datetime | None = None) -> dict:
    """Ask the vendor once about every running job; apply the outcome of those that ended.

    Returns ``{"running": n, "finished": [...]}``: what is still running, and per
    finished job its sync run, accepted and rejected counts. Outcomes are recorded at
    ``now`` (default: the time of the run that submitted the job).
    """
    store.ensure(con)
    dests: dict[str, Destination] = {}
    finished, running = [], 0
    for row in store.running_jobs(con):
        dest = dests.setdefault(row["destination"], destination(row["destination"]))
        job = json.loads(row["job"])
        outcome = dest.poll(job)
        if outcome is None:
            running += 1
            continue
        earlier = json.loads(row["detail"] or "{}").get("rejected") or {}
        outcome.rejected = {**earlier, **outcome.rejected}
        outcome.accepted = [k for k in outcome.accepted if k not in outcome.rejected]
        members = store.members_from_json(row["members"])
        if row["kind"] == "erasure":
            from lifecycle.activation import erasure  # noqa: PLC0415 - erasure imports engine

            erasure.job_finished(con, row, outcome)
            # an erasure job keeps its (hashed, id-less) members: a FAILED one is resent
            store.finish_job(con, row["job_id"], "done", keep_members=bool(outcome.rejected))
            finished.append({"job_id": row["job_id"], "kind": "erasure"})
            continue
        meta = job["_sync"]
        sync = SimpleNamespace(
            audience=meta["audience"], destination=meta["destination"], guards=meta["guards"]
        )
        # the run's clock (rejection backoff counts from the run that sent the batch)
        at = now or row["submitted_at"]
        store.apply_batch(con, row["sync_run_id"], sync, row["change"], members, outcome, at)
        store.finish_job(con, row["job_id"], "done")
        keys = {m.key for m in members}
        accepted = len(set(outcome.accepted) & keys)
        rejected = len(set(outcome.rejected) & keys)
        store.add_to_run(con, row["sync_run_id"], accepted, rejected, outcome.match_rate)
        finished.append(
            {
                "job_id": row["job_id"],
                "kind": "sync",
                "sync_run_id": row["sync_run_id"],
                "audience": meta["audience"],
                "destination": meta["destination"],
                "change": row["change"],
                "accepted": accepted,
                "rejected": rejected,
                "match_rate": outcome.match_rate,
            }
        )
        log.info(
            "%s -> %s: job %s ended: %d accepted, %d rejected",
            meta["audience"],
            meta["destination"],
            row["job_id"],
            accepted,
            rejected,
        )
    return {"running": running, "finished": finished}


def wait_for_jobs(
    con: duckdb.DuckDBPyConnection,
    poll_s: float = 10.0,
    timeout_s: float = 3600.0,
    sleep=time.sleep,
) -> dict:
    """:func:`finish_jobs` until nothing runs (for the CLI; the DAG uses a sensor)."""
    deadline = time.monotonic() + timeout_s
    done: list = []
    while True:
        state = finish_jobs(con)
        done += state["finished"]
        if not state["running"]:
            return {"running": 0, "finished": done}
        if time.monotonic() > deadline:
            return {"running": state["running"], "finished": done}
        log.info("%d vendor job(s) still running; asking again in %.0fs", state["running"], poll_s)
        sleep(poll_s)


def run_summary(con: duckdb.DuckDBPyConnection, sync_run_id: str) -> dict | None:
    """The recorded row of one run (after its jobs finished) as a dict."""
    if not store.table_exists(con, "ops", "sync_runs"):
        return None
    cur = con.execute("select * from ops.sync_runs where sync_run_id = ?", [sync_run_id])
    row = cur.fetchone()
    if not row:
        return None
    out = dict(zip([d[0] for d in cur.description], row, strict=True))
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in out.items()}
