"""Connections to the DuckDB warehouse and the serving snapshot."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb

from lifecycle.config import duckdb_settings, settings

log = logging.getLogger(__name__)

#: Schemas copied into the serving snapshot: the public interface for BI and the UI.
SERVING_SCHEMAS = ("marts", "audiences", "ops")
#: Written into every snapshot: which night it holds and each table's row count, so a
#: reader can tell which night it sees and that the snapshot is whole.
SNAPSHOT_TABLE = "ops.serving_snapshot"


def connect(read_only: bool = False, path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """The warehouse (or ``path``), with the DuckDB settings of the dbt profile: UTC, and
    the memory limit and threads that dbt runs with (spilling to ``<path>.tmp``)."""
    s = settings()
    path = Path(path or s.warehouse_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    for key, value in duckdb_settings(s).items():
        # as dbt-duckdb does: strings, cast by DuckDB to the setting's type
        con.execute(f"set {key} = '{value.replace(chr(39), chr(39) * 2)}'")
    return con


def publish(
    schemas: tuple[str, ...] = SERVING_SCHEMAS,
    night: str | None = None,
    run_id: str | None = None,
) -> dict[str, int]:
    """Copy the public schemas into ``serving.next.duckdb`` and rename it over ``serving``.

    Readers that hold the old file open keep reading the previous night; new readers
    open the new one. Nobody ever sees a half-written night.
    """
    s = settings()
    target = s.serving_path
    staging = target.with_name(target.stem + ".next.duckdb")
    staging.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    con = connect()
    try:
        con.execute(f"attach '{staging}' as serving_next")
        tables = con.execute(
            """select table_schema, table_name from information_schema.tables
               where table_catalog = current_database() and table_schema in ({})
               order by 1, 2""".format(",".join("?" * len(schemas))),
            list(schemas),
        ).fetchall()
        for schema in sorted({t[0] for t in tables}):
            con.execute(f"create schema serving_next.{schema}")
        for schema, table in tables:
            con.execute(
                f"create table serving_next.{schema}.{table} as select * from {schema}.{table}"
            )
            counts[f"{schema}.{table}"] = con.execute(
                f"select count(*) from serving_next.{schema}.{table}"
            ).fetchone()[0]
        con.execute("create schema if not exists serving_next.ops")
        con.execute(f"""create or replace table serving_next.{SNAPSHOT_TABLE} (
            night date, run_id varchar, published_at timestamp, table_name varchar,
            row_count bigint)""")
        con.executemany(
            f"insert into serving_next.{SNAPSHOT_TABLE} "
            "values (?::date, ?, current_timestamp::timestamp, ?, ?)",
            [[night, run_id, t, n] for t, n in counts.items()],
        )
        con.execute("checkpoint serving_next")
        con.execute("detach serving_next")
    finally:
        con.close()
    os.replace(staging, target)
    log.info(
        "published %d tables of night %s to %s (open it read_only: %s)",
        len(counts),
        night,
        target,
        sqlalchemy_url(target),
    )
    return counts


def serving_connection(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the serving snapshot (what BI tools should do)."""
    return duckdb.connect(str(path or settings().serving_path), read_only=True)


def sqlalchemy_url(path: Path | None = None) -> str:
    """SQLAlchemy URL (duckdb-engine) for BI tools: the serving snapshot, read-only."""
    return f"duckdb:///{path or settings().serving_path}?access_mode=read_only"


def probe(con: duckdb.DuckDBPyConnection) -> tuple[str | None, int]:
    """Which night a serving snapshot holds, and how many of its tables disagree with the
    row counts recorded when it was published (0 for a whole snapshot)."""
    tables = con.execute(f"select table_name, row_count from {SNAPSHOT_TABLE}").fetchall()
    night = con.execute(f"select max(night)::varchar from {SNAPSHOT_TABLE}").fetchone()[0]
    if not tables:
        return night, 0
    # one statement: every table counted against the marker at the same instant
    checks = " + ".join(f"((select count(*) from {t}) <> {int(n)})::int" for t, n in tables)
    return night, int(con.execute(f"select {checks}").fetchone()[0])
