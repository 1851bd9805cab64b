"""Source freshness relative to the night being built, thresholds from the dbt sources.

``dbt source freshness`` compares with the wall clock; a night (and a backfill, and the
sandbox's 2026 world) must be judged against its own cutoff ``as_of``. So the thresholds
are read from the dbt manifest (each source table's ``loaded_at_field`` and ``freshness``
block, as declared in ``_<source>__sources.yml``) and the age is ``as_of - max(field)``.
``error_after`` exceeded fails the gate, ``warn_after`` exceeded warns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

from lifecycle.quality.gate import CheckResult

SUITE = "freshness"
PERIODS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


@dataclass(frozen=True)
class SourceFreshness:
    source: str
    table: str  # schema.table in the warehouse
    loaded_at_field: str
    warn_after: timedelta | None
    error_after: timedelta | None


def _threshold(block: dict | None) -> timedelta | None:
    if not block or not block.get("count") or not block.get("period"):
        return None
    return int(block["count"]) * PERIODS[block["period"]]


def from_manifest(manifest_path: Path) -> list[SourceFreshness]:
    """Every source table that declares a loaded_at_field and a freshness threshold."""
    manifest = json.loads(Path(manifest_path).read_text())
    out = []
    for node in manifest.get("sources", {}).values():
        fresh = node.get("freshness") or node.get("config", {}).get("freshness") or {}
        field = node.get("loaded_at_field") or node.get("config", {}).get("loaded_at_field")
        warn, error = _threshold(fresh.get("warn_after")), _threshold(fresh.get("error_after"))
        if field and (warn or error):
            out.append(
                SourceFreshness(
                    source=node["source_name"],
                    table=f"{node['schema']}.{node['identifier'] or node['name']}",
                    loaded_at_field=field,
                    warn_after=warn,
                    error_after=error,
                )
            )
    return sorted(out, key=lambda f: f.table)


def _latest(con, f: SourceFreshness) -> tuple[datetime | None, str | None]:
    try:
        value = con.execute(
            f'select max("{f.loaded_at_field}")::timestamp from {f.table}'
        ).fetchone()[0]
    except duckdb.Error as exc:  # table or column gone: a schema change
        return None, str(exc).splitlines()[0]
    return value, None if value is not None else f"no {f.loaded_at_field} in {f.table}"


def check(
    con: duckdb.DuckDBPyConnection, sources: list[SourceFreshness], as_of: datetime
) -> list[CheckResult]:
    """One result per source (and threshold): its age at ``as_of`` against the threshold.

    A source is as fresh as its most recently loaded table: one connector loads them
    all, and a table that legitimately rarely changes (companies) must not make a
    delivering source look stale. Each table's own age is reported alongside.
    """
    groups: dict[tuple, list[SourceFreshness]] = {}
    for f in sources:
        groups.setdefault((f.source, f.warn_after, f.error_after), []).append(f)
    results = []
    for (source, warn_after, error_after), tables in groups.items():
        ages, errors = {}, {}
        for f in tables:
            latest, error = _latest(con, f)
            if error:
                errors[f.table] = error
            if latest is not None:
                ages[f.table] = as_of - latest
        observed: dict = {"as_of": as_of.isoformat(sep=" ")}
        severity = "fail" if error_after else "warn"
        limit = error_after or warn_after
        if not ages:
            success = False
            observed["error"] = "; ".join(f"{t}: {e}" for t, e in errors.items()) or "no rows"
        else:
            age = min(ages.values())
            observed["age_hours"] = round(age.total_seconds() / 3600, 1)
            observed["table_age_hours"] = {
                t: round(a.total_seconds() / 3600, 1) for t, a in sorted(ages.items())
            }
            if errors:
                observed["error"] = "; ".join(f"{t}: {e}" for t, e in errors.items())
            if error_after and age > error_after:
                success = False
            elif warn_after and age > warn_after:
                success, severity, limit = False, "warn", warn_after
            else:
                success = True
        observed["limit_hours"] = round(limit.total_seconds() / 3600, 1)
        names = ",".join(sorted(f.table.split(".")[-1] for f in tables))
        results.append(
            CheckResult(
                SUITE,
                f"source_freshness({source})",
                f"{source}: {names}",
                severity,
                success,
                0,
                observed,
                f"source '{source}' loaded data within its freshness threshold of the "
                f"night's cutoff (max {tables[0].loaded_at_field})",
            )
        )
    return results
