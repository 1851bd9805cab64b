"""Helpers shared by the source tests: warehouse counts, checksums, sandbox controls."""

from __future__ import annotations

import json
import os

import airflow.settings  # noqa: F401 - configures logging now, not mid-test (keeps caplog)
import duckdb
import requests

from lifecycle.config import settings

TABLES = {
    "hubspot_contacts": "raw_hubspot.contacts",
    "hubspot_deals": "raw_hubspot.deals",
    "hubspot_companies": "raw_hubspot.companies",
    "segment_events": "raw_segment.events",
    "mailchimp_members": "raw_mailchimp.members",
    "mailchimp_campaigns": "raw_mailchimp.campaigns",
    "mailchimp_activity": "raw_mailchimp.email_activity",
}
#: Columns that differ between two loads of the same data by design.
VOLATILE = ("_dlt_load_id", "_dlt_id", "quarantined_at")


def ingest_world(data, config) -> object:
    """Simulate ``config``, serve it and ingest every source into ``data``/warehouse.duckdb.

    The process environment is pointed at ``data`` and the sandbox only while loading and
    restored afterwards, so module-scoped fixtures can build their own warehouse.
    """
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
    from lifecycle.tasks import SOURCES, ingest

    env = {
        "LIFECYCLE_DATA_DIR": str(data),
        "DLT_DATA_DIR": str(data / "dlt"),
        "LIFECYCLE_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    world = prepare(config, data / "landing")
    try:
        with SandboxServer(world) as srv:
            conn = connection_env(srv.base_url, data / "landing")
            saved.update({k: os.environ.get(k) for k in conn})
            os.environ.update(conn)
            for source in SOURCES:
                ingest(source)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return world


def query(sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(settings().warehouse_path), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def table_exists(table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        query(
            "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        )
    )


def counts(keys=None) -> dict[str, int]:
    keys = keys or list(TABLES)
    return {
        k: (query(f"select count(*) from {TABLES[k]}")[0][0] if table_exists(TABLES[k]) else 0)
        for k in keys
    }


def checksum(table: str) -> tuple[int, int]:
    """(rows, order-independent hash of every non-volatile column of every row)."""
    schema, name = table.split(".")
    cols = [
        r[0]
        for r in query(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ? order by column_name",
            [schema, name],
        )
        if r[0] not in VOLATILE
    ]
    expr = ", ".join(f'"{c}"' for c in cols)
    n, h = query(f"select count(*), coalesce(sum(hash({expr})), 0) from {table}")[0]
    return int(n), int(h)


def checksums(tables=None) -> dict[str, tuple[int, int]]:
    return {t: checksum(t) for t in (tables or TABLES.values()) if table_exists(t)}


def quarantine(source: str) -> list[dict]:
    table = f"raw_{source}.quarantine"
    if not table_exists(table):
        return []
    rows = query(
        f"select source, entity, record_key, reason, payload, _dlt_load_id from {table} "
        "order by record_key"
    )
    keys = ("source", "entity", "record_key", "reason", "payload", "load_id")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def add_faults(sandbox, vendor: str, faults: list[dict]) -> dict:
    r = requests.post(f"{sandbox.base_url}/_sandbox/faults/{vendor}", json=faults, timeout=5)
    r.raise_for_status()
    return r.json()


def set_limits(sandbox, **limits) -> dict:
    r = requests.post(f"{sandbox.base_url}/_sandbox/limits", json=limits, timeout=5)
    r.raise_for_status()
    return r.json()


def stats(sandbox) -> dict:
    return requests.get(f"{sandbox.base_url}/_sandbox/stats", timeout=5).json()


def set_clock(sandbox, now_ts: float) -> None:
    r = requests.post(f"{sandbox.base_url}/_sandbox/clock", json={"now_ts": now_ts}, timeout=30)
    r.raise_for_status()


def tune_connection(monkeypatch, conn_id: str, **extra) -> None:
    """Add keys to a connection's ``extra`` (e.g. a short timeout) for this test."""
    var = f"AIRFLOW_CONN_{conn_id.upper()}"
    conn = json.loads(os.environ[var])
    conn.setdefault("extra", {}).update(extra)
    monkeypatch.setenv(var, json.dumps(conn))
