"""The quality gate's memory: metrics kept night by night in ``ops.quality_metrics``.

Derived checks compare tonight with an earlier night (row counts, stage shares, audience
sizes); this module stores tonight's values and reads the latest earlier ones.
"""

from __future__ import annotations

import duckdb

METRICS_DDL = """create table if not exists ops.quality_metrics (
    night date, metric varchar, key varchar, value double, run_id varchar,
    recorded_at timestamp default current_timestamp)"""


def ensure_metrics(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(METRICS_DDL)


def previous(con, metric: str, key: str, night: str) -> tuple[str, float] | None:
    """The latest value recorded for ``metric``/``key`` on a night before ``night``."""
    row = con.execute(
        """select night, value from ops.quality_metrics
           where metric = ? and key = ? and night < ?::date order by night desc limit 1""",
        [metric, key, night],
    ).fetchone()
    return (str(row[0]), float(row[1])) if row else None


def remember(con, night: str, run_id: str, metric: str, values: dict[str, float]) -> None:
    """Store tonight's values (a re-run of the night replaces them)."""
    con.execute(
        "delete from ops.quality_metrics where night = ?::date and metric = ?", [night, metric]
    )
    con.executemany(
        "insert into ops.quality_metrics (night, metric, key, value, run_id) "
        "values (?::date, ?, ?, ?, ?)",
        [[night, metric, k, float(v), run_id] for k, v in values.items()],
    )
