"""What Airflow knows about the nights: the latest run of the DAG, its failed tasks, and
which task instance ran each audience sync (for the page's links to runs and logs).

Read through Airflow's own metadata session in the api-server. The serving snapshot says
which night BI sees; only Airflow can say that a later night failed, since a night that
fails its gate is never published.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

#: Task ids of the activate group start with this (one mapped task per audience sync).
ACTIVATE_PREFIX = "activate."
RUNNING = {"queued", "running"}
#: Clock slack between the worker that timestamps a sync and the api-server that
#: timestamps its task instance (one machine or one host's containers: small).
SLACK = timedelta(seconds=2)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat() if value else None


def run_url(base: str, dag_id: str, run_id: str) -> str:
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_url(
    base: str,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int = -1,
    try_number: int | None = None,
) -> str:
    """The task instance page; the UI opens it on the task's log."""
    url = f"{run_url(base, dag_id, run_id)}/tasks/{quote(task_id, safe='')}"
    if map_index is not None and map_index >= 0:
        url += f"/mapped/{map_index}"
    if try_number:
        url += f"?try_number={try_number}"
    return url


def recent_runs(session: Session, dag_id: str, base: str, limit: int = 10) -> list[dict]:
    """The DAG's runs, newest night first."""
    from airflow.models.dagrun import DagRun  # noqa: PLC0415 - api-server only

    rows = session.execute(
        select(
            DagRun.run_id,
            DagRun._state,
            DagRun.logical_date,
            DagRun.run_after,
            DagRun.start_date,
            DagRun.end_date,
            DagRun.run_type,
        )
        .where(DagRun.dag_id == dag_id)
        .order_by(DagRun.logical_date.desc().nullslast(), DagRun.run_after.desc())
        .limit(limit)
    ).all()
    return [
        {
            "run_id": run_id,
            "state": str(state) if state else None,
            "night": (_aware(logical) or _aware(after)).date().isoformat(),
            "run_type": str(run_type) if run_type else None,
            "start_date": _iso(start),
            "end_date": _iso(end),
            "url": run_url(base, dag_id, run_id),
        }
        for run_id, state, logical, after, start, end, run_type in rows
    ]


def failed_tasks(session: Session, dag_id: str, run_id: str, base: str) -> list[dict]:
    """Failed task instances of a run (each with a link to its log)."""
    from airflow.models.taskinstance import TaskInstance as TI  # noqa: PLC0415

    rows = session.execute(
        select(TI.task_id, TI.map_index, TI.rendered_map_index, TI.try_number, TI.state)
        .where(TI.dag_id == dag_id, TI.run_id == run_id, TI.state == "failed")
        .order_by(TI.start_date)
    ).all()
    return [
        {
            "task_id": task_id,
            "map_index": map_index,
            "label": f"{task_id} [{rendered or map_index}]" if map_index >= 0 else task_id,
            "try_number": try_number,
            "url": task_url(base, dag_id, run_id, task_id, map_index, try_number),
        }
        for task_id, map_index, rendered, try_number, _ in rows
    ]


def activate_attempts(session: Session, dag_id: str, since: datetime) -> list[dict]:
    """Every try of every activate task since ``since`` (current tries and earlier ones)."""
    from airflow.models.taskinstance import TaskInstance as TI  # noqa: PLC0415
    from airflow.models.taskinstancehistory import TaskInstanceHistory as TIH  # noqa: PLC0415

    out = []
    for model in (TI, TIH):
        rows = session.execute(
            select(
                model.run_id,
                model.task_id,
                model.map_index,
                model.try_number,
                model.rendered_map_index,
                model.start_date,
                model.end_date,
            ).where(
                model.dag_id == dag_id,
                model.task_id.startswith(ACTIVATE_PREFIX),
                model.start_date >= since,
            )
        ).all()
        out += [
            {
                "run_id": r[0],
                "task_id": r[1],
                "map_index": r[2],
                "try_number": r[3],
                "label": r[4],
                "start": _aware(r[5]),
                "end": _aware(r[6]),
            }
            for r in rows
        ]
    # a try in both tables (history keeps finished tries): once
    return list(
        {(a["run_id"], a["task_id"], a["map_index"], a["try_number"]): a for a in out}.values()
    )


def match_sync(sync: dict, attempts: list[dict], now: datetime) -> dict | None:
    """The task try that ran this sync: its window holds the sync's start; a try whose
    rendered map index names the same audience and destination wins ties."""
    started = _aware(datetime.fromisoformat(sync["started_at"])) if sync["started_at"] else None
    if started is None:
        return None
    label = f"{sync['audience']} -> {sync['destination']}"
    best, best_key = None, None
    for a in attempts:
        if a["start"] is None:
            continue
        end = a["end"] or now
        if not (a["start"] - SLACK <= started <= end + SLACK):
            continue
        inside = a["start"] <= started <= end
        key = (a["label"] != label, not inside, abs((started - a["start"]).total_seconds()))
        if best_key is None or key < best_key:
            best, best_key = a, key
    return best


def link_syncs(session: Session, dag_id: str, base: str, syncs: list[dict]) -> list[dict]:
    """Add ``run_id``, ``run_url`` and ``log_url`` to each sync row (None for a sync that
    no Airflow task ran, e.g. ``lifecycle sync`` from the command line)."""
    starts = [datetime.fromisoformat(s["started_at"]) for s in syncs if s.get("started_at")]
    attempts = activate_attempts(session, dag_id, min(starts) - timedelta(days=1)) if starts else []
    now = datetime.now(UTC)
    out = []
    for s in syncs:
        a = match_sync(s, attempts, now)
        out.append(
            {
                **s,
                "run_id": a["run_id"] if a else None,
                "run_url": run_url(base, dag_id, a["run_id"]) if a else None,
                "log_url": task_url(
                    base, dag_id, a["run_id"], a["task_id"], a["map_index"], a["try_number"]
                )
                if a
                else None,
            }
        )
    return out


def night_status(snapshot: dict | None, runs: list[dict], syncs: list[dict]) -> dict:
    """One verdict for the page's banner: which night ran last, did it fail, what BI sees."""
    latest = runs[0] if runs else None
    shown = snapshot["night"] if snapshot else None
    if latest is None:
        if snapshot is None:
            state, message = "no_run", "No night has run yet: trigger the DAG to build one."
        else:
            state = "no_airflow_run"
            message = (
                f"Airflow has no run of this DAG; the snapshot holds night {shown} "
                "(published outside this Airflow)."
            )
    elif latest["state"] in RUNNING:
        state = "running"
        message = f"Night {latest['night']} is running. " + (
            f"Showing night {shown}." if shown else "No night has been published yet."
        )
    elif latest["state"] == "failed":
        if snapshot and snapshot.get("run_id") == latest["run_id"]:
            state = "partly_failed"
            message = (
                f"Night {latest['night']} was published, then a later task failed "
                "(see the failed tasks and the syncs below)."
            )
        else:
            state = "failed"
            message = f"Night {latest['night']} failed. " + (
                f"Showing the last good snapshot: night {shown}."
                if shown
                else "No night has been published yet."
            )
    else:
        state, message = "ok", f"Night {latest['night']} succeeded."
    not_ok = [s for s in syncs if s.get("status") != "success"]
    by_status: dict[str, int] = {}
    for s in not_ok:
        by_status[s.get("status") or "unknown"] = by_status.get(s.get("status") or "unknown", 0) + 1
    return {
        "state": state,
        "message": message,
        "latest_run": latest,
        "syncs": {"total": len(syncs), "not_ok": len(not_ok), "by_status": by_status},
    }
