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
    """Load one source into ``raw_<source>``; return rows loaded per table."""
    from lifecycle.sources.common import run_source  # noqa: PLC0415 - heavy imports

    if source_name == "hubspot":
        from lifecycle.sources.hubspot import hubspot_source as factory  # noqa: PLC0415
    elif source_name == "segment":
        from lifecycle.sources.segment import segment_source as factory  # noqa: PLC0415
    elif source_name == "mailchimp":
        from lifecycle.sources.mailchimp import mailchimp_source as factory  # noqa: PLC0415
    else:
        raise ValueError(f"unknown source {source_name!r}; known: {', '.join(SOURCES)}")
    return run_source(source_name, factory(), full_refresh=full_refresh)


def quality_gate(run_id: str) -> list[dict]:
    from lifecycle.quality.gate import run_checks  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    con = connect()
    try:
        return run_checks(con, run_id)
    finally:
        con.close()


def publish() -> dict[str, int]:
    from lifecycle.warehouse import publish as do_publish  # noqa: PLC0415

    return do_publish()


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
    still missing.
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


def night_summary(night: str, ingested: dict, syncs: list[dict]) -> dict:
    """Rows per source, contacts per stage, members synced; written next to the snapshot."""
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
    return "\n".join(lines)


def latest_summary(data_dir: Path | None = None) -> dict | None:
    runs = sorted((data_dir or settings().data_dir).glob("runs/*/summary.json"))
    return json.loads(runs[-1].read_text()) if runs else None
