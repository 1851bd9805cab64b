"""Connections to the DuckDB warehouse and the serving snapshot."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb

from lifecycle.config import settings

log = logging.getLogger(__name__)

#: Schemas copied into the serving snapshot: the public interface for BI and the UI.
SERVING_SCHEMAS = ("marts", "audiences", "ops")


def connect(read_only: bool = False) -> duckdb.DuckDBPyConnection:
    path = settings().warehouse_path
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    return con


def publish(schemas: tuple[str, ...] = SERVING_SCHEMAS) -> dict[str, int]:
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
        con.execute("detach serving_next")
    finally:
        con.close()
    os.replace(staging, target)
    log.info("published %d tables to %s", len(counts), target)
    return counts


def serving_connection(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the serving snapshot (what BI tools should do)."""
    return duckdb.connect(str(path or settings().serving_path), read_only=True)
