"""dlt hands rows to DuckDB as Parquet files (fast) and they land exactly as dlt's own
default for DuckDB, SQL INSERT statements, lands them: same tables, columns, types, rows
and values, quarantine included. The oracle is the other file format on the same world.
"""

from __future__ import annotations

from sources_support import add_faults, checksum, query

from lifecycle.sandbox.server import SandboxServer, connection_env
from lifecycle.sandbox.world import WorldConfig, simulate
from lifecycle.sources import common

FORMATS = {"parquet": "parquet", "insert": "insert_values"}
FAULTS = {
    "hubspot": [
        {"kind": "missing_field", "object": "contacts", "field": "email", "count": 2},
        {
            "kind": "new_field",
            "object": "contacts",
            "field": "hs_buying_role",
            "value": "CHAMPION",
            "count": 3,
        },
    ],
    "mailchimp": [
        {
            "kind": "changed_type",
            "object": "members",
            "field": "last_changed",
            "value": 12345,
            "count": 2,
        },
    ],
}


def describe(path, monkeypatch) -> dict:
    """Per raw table: its columns with types, and sources_support's (rows, value hash)."""
    monkeypatch.setenv("LIFECYCLE_WAREHOUSE_PATH", str(path))
    tables = query(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema in ('raw_hubspot', 'raw_mailchimp') "
        "and table_name not like '\\_dlt%' escape '\\' order by 1"
    )
    out = {}
    for (table,) in tables:
        schema, name = table.split(".")
        cols = query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by column_name",
            [schema, name],
        )
        out[table] = (cols, *checksum(table))
    return out


def load(monkeypatch, srv, data, fmt: str) -> None:
    from lifecycle.tasks import ingest  # noqa: PLC0415

    monkeypatch.setattr(common, "LOADER_FILE_FORMAT", fmt)
    env = {
        "LIFECYCLE_DATA_DIR": str(data),
        "DLT_DATA_DIR": str(data / "dlt"),
        "LIFECYCLE_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
        **connection_env(srv.base_url, data / "landing"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for source in ("hubspot", "mailchimp"):
        ingest(source)


def test_parquet_loads_land_what_insert_statements_land(tmp_path, monkeypatch):
    assert common.LOADER_FILE_FORMAT == "parquet"  # the shipped default
    world = simulate(WorldConfig(contacts=2_000, seed=7, profile="realistic"))
    with SandboxServer(world) as srv:
        # malformed and drifted records on both loads: quarantine and new columns count
        for target in ("parquet", "insert"):
            add_faults(srv, "hubspot", FAULTS["hubspot"])
            add_faults(srv, "mailchimp", FAULTS["mailchimp"])
            load(monkeypatch, srv, tmp_path / target, FORMATS[target])
    fast = describe(tmp_path / "parquet" / "warehouse.duckdb", monkeypatch)
    slow = describe(tmp_path / "insert" / "warehouse.duckdb", monkeypatch)
    assert set(fast) == set(slow)
    assert fast["raw_hubspot.contacts"][1] > 1_000
    assert fast["raw_mailchimp.email_activity"][1] > 1_000
    assert fast["raw_hubspot.quarantine"][1] == 2 and fast["raw_mailchimp.quarantine"][1] == 2
    assert ("hs_buying_role", "VARCHAR") in fast["raw_hubspot.contacts"][0]
    differ = {t: (fast[t], slow[t]) for t in fast if fast[t] != slow[t]}
    assert not differ, differ
