"""What each task of ``lifecycle_nightly`` does. The DAG file only wires these together.

Functions here take plain arguments and return JSON-able dicts (XCom), so they run the
same from Airflow, the CLI and tests.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from lifecycle.config import settings

log = logging.getLogger(__name__)

SOURCES = ("hubspot", "segment", "mailchimp")


def ingest(source_name: str, full_refresh: bool = False) -> dict[str, int]:
    """Load one source into ``raw_<source>``; return rows loaded per table.

    HubSpot and Mailchimp then report what the vendor archived or deleted; each becomes
    an erasure in ``ops.erasures`` (counted as ``erasures_<origin>`` when there are new
    ones). Purging the erased people's rows is :func:`erase`, after every source loaded.
    """
    if source_name == "segment":  # DuckDB loads its files itself, without dlt
        from lifecycle.sources import segment  # noqa: PLC0415

        counts = segment.load(full_refresh=full_refresh)
    else:
        from lifecycle.sources.common import run_source  # noqa: PLC0415 - heavy imports

        if source_name == "hubspot":
            from lifecycle.sources.hubspot import hubspot_source as factory  # noqa: PLC0415
        elif source_name == "mailchimp":
            from lifecycle.sources.mailchimp import mailchimp_source as factory  # noqa: PLC0415
        else:
            raise ValueError(f"unknown source {source_name!r}; known: {', '.join(SOURCES)}")
        counts = run_source(source_name, factory(), full_refresh=full_refresh)
    from lifecycle import erasure  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    con = connect()
    try:
        before = set(erasure.pending(con))
        found = erasure.detect(con, source_name)
        new = len(set(erasure.pending(con)) - before)
    finally:
        con.close()
    if new:
        log.info("%s: %d new erasure(s) recorded in ops.erasures %s", source_name, new, found)
        counts.update({f"erasures_{k}": v for k, v in found.items() if v})
    return counts


def erase() -> dict[str, int]:
    """Purge every erased person's rows from every raw table (hashes only, idempotent),
    and new erasures' rows from the dbt tables: run after the night's ingests, before dbt,
    so they leave every model tonight (incremental ones included)."""
    from lifecycle import erasure  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    con = connect()
    try:
        erasure.ensure_table(con)
        purged = erasure.purge(con)
        # incremental models keep earlier nights' rows: new erasures leave them now
        models = erasure.purge_models(con)
        total = con.execute("select count(*) from ops.erasures").fetchone()[0]
    finally:
        con.close()
    log.info(
        "erasures: %d recorded in ops.erasures; this run purged %d raw rows %s and %d "
        "model rows %s",
        total,
        sum(purged.values()),
        purged,
        sum(models.values()),
        models,
    )
    return {
        "erasures": int(total),
        "rows_purged": int(sum(purged.values())),
        "model_rows_purged": int(sum(models.values())),
    }


def quality_check(kind: str, run_id: str, night: str) -> dict:
    """One part of the quality gate for the night ``night`` (YYYY-MM-DD).

    ``kind`` is ``freshness`` (raw sources against their dbt freshness thresholds),
    ``raw`` or ``marts`` (the Great Expectations suites of that layer under
    ``include/expectations/``). Results go to ``ops.quality_results``; raises
    :class:`~lifecycle.quality.gate.QualityGateFailed` when a ``fail`` check did not pass.
    """
    from datetime import datetime  # noqa: PLC0415

    from lifecycle.quality import gate  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    s = settings()
    con = connect()
    try:
        if kind == "freshness":
            from lifecycle.quality import freshness  # noqa: PLC0415

            sources = freshness.from_manifest(s.dbt_target_dir / "manifest.json")
            results = freshness.check(con, sources, datetime.fromisoformat(night))
        elif kind in ("raw", "marts"):
            from lifecycle.quality.expectations import docs_index, run_layer  # noqa: PLC0415

            results = run_layer(con, kind, night, run_id)
            log.info("Data Docs (HTML): %s", docs_index(s.data_dir))
        else:
            raise ValueError(f"unknown quality check {kind!r}: freshness, raw or marts")
        gate.record(con, run_id, night, results)
    finally:
        con.close()
    counts = gate.decide(results)
    return {"kind": kind, "night": night, **counts}


def publish(night: str | None = None, run_id: str | None = None) -> dict[str, int]:
    """Swap in a new serving snapshot of the night (only ever called after the gate)."""
    from lifecycle.warehouse import publish as do_publish  # noqa: PLC0415

    return do_publish(night=night, run_id=run_id)


def publish_syncs(night: str | None = None, run_id: str | None = None) -> dict:
    """Publish the night again after ``activate``, so the snapshot holds its sync log.

    ``publish`` runs before the syncs (destinations must never get a night BI cannot
    see), so its snapshot holds ``ops.sync_runs`` up to the night before. This second
    swap adds the night's own syncs, failed ones included, for BI and the Lifecycle page.
    Only a run that published the night may do it: a night that failed its gate is never
    served. Returns ``{"published": bool, "reason"| "tables": ...}``.
    """
    from lifecycle.warehouse import publish as do_publish  # noqa: PLC0415
    from lifecycle.warehouse import serving_connection  # noqa: PLC0415

    path = settings().serving_path
    current = None
    if path.exists():
        con = serving_connection(path)
        try:
            current = con.execute(
                "select arg_max(run_id, night) from ops.serving_snapshot"
            ).fetchone()[0]
        finally:
            con.close()
    if current != run_id:
        return {
            "published": False,
            "reason": f"the snapshot is of run {current!r}, not of this run {run_id!r}: "
            "this night was not published (did its quality gate fail?)",
        }
    return {"published": True, "tables": len(do_publish(night=night, run_id=run_id))}


def _audience_specs():
    """Every declared sync, validated (models checked against the dbt manifest if built)."""
    from lifecycle.activation.audiences import load, manifest_models  # noqa: PLC0415

    s = settings()
    return load(
        s.include_dir / "audiences.yml", manifest_models(s.dbt_target_dir / "manifest.json")
    )


def audience_syncs() -> list[dict]:
    """Every (audience, destination) declared in include/audiences.yml, for task mapping."""
    return [{"audience": s.audience, "destination": s.destination} for s in _audience_specs()]


def sync(audience: str, destination: str, dry_run: bool = False) -> dict:
    """Sync one audience to one destination (diff only); raise if a guard aborted it.

    Safe to retry: state advances per accepted batch, so a retry sends only what is
    still missing. An asynchronous destination (Google Ads) ends ``submitted``: its jobs
    are finished by :func:`finish_vendor_jobs` (the DAG's ``wait_for_vendor_jobs``).
    """
    from lifecycle.activation import engine  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    specs = [
        s for s in _audience_specs() if s.audience == audience and s.destination == destination
    ]
    if not specs:
        raise KeyError(f"no sync for audience {audience!r} to {destination!r} in audiences.yml")
    con = connect(read_only=dry_run)
    try:
        result = engine.run(con, specs[0], engine.destination(destination), dry_run=dry_run)
    finally:
        con.close()
    result.pop("plan", None)
    if result["status"] in ("aborted", "failed"):
        raise RuntimeError(
            f"sync {audience} -> {destination} {result['status']}: {result['error']}"
        )
    return result


def propagate_erasures() -> dict:
    """Send every pending erasure (``ops.erasures``) to every destination (Contract B)."""
    from lifecycle.activation import erasure  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    con = connect()
    try:
        deliveries = erasure.propagate(con)
    finally:
        con.close()
    by_status: dict[str, int] = {}
    for d in deliveries:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    erasures = len({d["erasure_id"] for d in deliveries})
    log.info("erasures propagated: %d erasures, deliveries %s", erasures, by_status)
    return {"erasures": erasures, "deliveries": by_status}


def finish_vendor_jobs(syncs: list[dict] | None = None) -> dict:
    """Ask vendors once about their running jobs; apply those that ended.

    Returns ``{"running": n, "finished": [...], "syncs": [...]}``: the sensor is done when
    n is 0; ``syncs`` are the given sync results with each ``submitted`` one replaced by
    its run as recorded now (accepted, rejected, status after its jobs).
    """
    from lifecycle.activation import engine  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    con = connect()
    try:
        state = engine.finish_jobs(con)
        state["syncs"] = [
            {**r, **(engine.run_summary(con, r["sync_run_id"]) or {})}
            if r.get("status") == "submitted" and r.get("sync_run_id")
            else r
            for r in (syncs or [])
        ]
    finally:
        con.close()
    log.info("vendor jobs: %d still running, %d finished", state["running"], len(state["finished"]))
    return state


def night_summary(night: str, ingested: dict, syncs: list[dict], run_id: str | None = None) -> dict:
    """Rows per source, contacts per stage, members synced; written next to the snapshot.

    Also writes the run report (Markdown + HTML with a funnel chart and stage-transition
    counts) to ``<serving dir>/reports/<night>/`` and logs its path.
    """
    from lifecycle.warehouse import serving_connection  # noqa: PLC0415

    s = settings()
    con = serving_connection()
    try:
        stages = dict(
            con.execute(
                "select lifecycle_stage, count(*) from marts.dim_contacts "
                "group by 1 order by 2 desc"
            ).fetchall()
        )
    finally:
        con.close()
    summary = {
        "night": night,
        "rows_loaded": ingested,
        "contacts_by_stage": stages,
        "syncs": [
            {
                k: v
                for k, v in r.items()
                if k
                in (
                    "audience",
                    "destination",
                    "audience_size",
                    "planned_adds",
                    "planned_removes",
                    "accepted",
                    "rejected",
                    "status",
                )
            }
            for r in syncs
        ],
        "warehouse": str(s.warehouse_path),
        "serving": str(s.serving_path),
    }
    from lifecycle import report  # noqa: PLC0415
    from lifecycle.quality.expectations import docs_index  # noqa: PLC0415

    docs = docs_index(s.data_dir)
    paths = report.write(summary, run_id=run_id, docs=str(docs) if docs.exists() else None)
    summary["report"] = str(paths["html"])
    out = s.data_dir / "runs" / night / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    log.info("night summary written to %s\n%s", out, render(summary))
    return summary


def render(summary: dict) -> str:
    """The summary as a short human-readable block."""
    lines = [f"Night {summary['night']}", "  rows loaded per source:"]
    for source, tables in summary["rows_loaded"].items():
        detail = ", ".join(f"{t}={n}" for t, n in sorted(tables.items()))
        lines.append(f"    {source:<10} {detail or 'no new rows'}")
    lines.append("  contacts per lifecycle stage:")
    for stage, n in summary["contacts_by_stage"].items():
        lines.append(f"    {stage:<16} {n}")
    lines.append("  audience syncs:")
    for r in summary["syncs"]:
        lines.append(
            f"    {r['audience']} -> {r['destination']}: {r.get('audience_size', 0)} members, "
            f"+{r.get('planned_adds', 0)} / -{r.get('planned_removes', 0)} sent, "
            f"{r.get('accepted', 0)} accepted, {r.get('rejected', 0)} rejected ({r['status']})"
        )
    lines.append(f"  warehouse: {summary['warehouse']}")
    lines.append(f"  serving snapshot (read-only for BI): {summary['serving']}")
    if summary.get("report"):
        lines.append(f"  run report (HTML, funnel and stage transitions): {summary['report']}")
    return "\n".join(lines)


def latest_summary(data_dir: Path | None = None) -> dict | None:
    runs = sorted((data_dir or settings().data_dir).glob("runs/*/summary.json"))
    return json.loads(runs[-1].read_text()) if runs else None


def predict(night: str, run_id: str | None = None) -> dict:
    """Fit the predictive models on the night's warehouse and write ``predict.*`` and
    ``ops.predict_*`` (see :mod:`lifecycle.predict.nightly`); the ``predict_marts`` dbt
    models build on them."""
    from lifecycle.predict.nightly import run as run_predict  # noqa: PLC0415 - sklearn
    from lifecycle.warehouse import connect  # noqa: PLC0415

    con = connect()
    try:
        return run_predict(con, night, run_id=run_id)
    finally:
        con.close()
