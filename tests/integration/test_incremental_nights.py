"""Night after night of incremental builds equal one full refresh, row for row.

The raw event streams arrive the way they do in production: each night sees the events
that had arrived by its midnight, and about 3% of events arrive one to three days late
(after the night of their timestamp: within the models' late-data windows). The
lateness is decided here, from a hash of each event's key, not by the simulator or the
models. A first warehouse is built with ``--full-refresh`` on the first night, then each
following night on that night's raw layer without it (the incremental models append,
delete+insert or re-sessionize their windows); after the last night every table in
``intermediate``, ``marts`` and ``audiences`` must have the same checksum as a full
refresh on the same final raw layer.

CRM and list snapshots (HubSpot objects, Mailchimp members and campaigns) are the final
night's on every night: they are current-state snapshots, and the models rebuild from
them whole; the streams are what incremental models read in windows.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from sources_support import ingest_world

from lifecycle.sandbox.world import WorldConfig

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
FINAL = date(2026, 7, 1)
NIGHTS = [FINAL - timedelta(days=d) for d in (3, 2, 1, 0)]
#: arrival of each streamed row: when it was received, plus 1-3 days for ~3% of rows
STREAMS = {
    "raw_segment.events": (
        "message_id",
        'coalesce(received_at, "timestamp")',
    ),
    "raw_mailchimp.email_activity": (
        "campaign_id || '|' || email_id || '|' || action || '|' || \"timestamp\"::varchar",
        '"timestamp"',
    ),
}
SCHEMAS = ("intermediate", "marts", "audiences")
S_TIER_CONTACTS = 10_000


def arrival_sql(key: str, received: str) -> str:
    late = f"(hash({key}) % 100 < 3)"
    days = f"(1 + hash({key}) % 3)::int"
    return f"({received} + case when {late} then to_days({days}) else interval 0 day end)"


def dbt(warehouse: Path, night: date, *args: str) -> None:
    project = str(ROOT / "dbt_project")
    proc = subprocess.run(
        [DBT, "build", "--exclude", "tag:predict", *args]
        + ["--project-dir", project, "--profiles-dir", project]
        + ["--target-path", str(warehouse.parent / "dbt_target")]
        + ["--log-path", str(warehouse.parent / "dbt_logs")]
        + ["--vars", f"{{as_of: '{night.isoformat()}'}}"],
        env={**os.environ, "LIFECYCLE_WAREHOUSE_PATH": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def raw_as_of(warehouse: Path, full_raw: Path, night: date) -> dict[str, int]:
    """Replace the streams in ``warehouse`` by the rows that had arrived by ``night``."""
    con = duckdb.connect(str(warehouse))
    con.execute(f"attach '{full_raw}' as full_raw (read_only)")
    seen = {}
    for table, (key, received) in STREAMS.items():
        con.execute(
            f"create or replace table {table} as select * from full_raw.{table} "
            f"where {arrival_sql(key, received)} < timestamp '{night.isoformat()}'"
        )
        seen[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
    con.execute("detach full_raw")
    con.close()
    return seen


def checksums(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Per table: row count and an order-free checksum of every row's values."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ? and table_type = 'BASE TABLE' order by 1, 2",
            [list(SCHEMAS)],
        ).fetchall()
        out = {}
        for schema, table in tables:
            cols = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            # doubles to 12 significant digits: sums in another order may differ in the
            # last bits
            parts = [
                f"printf('%.12g', \"{c}\")" if t in ("DOUBLE", "FLOAT") else f'"{c}"::varchar'
                for c, t in cols
            ]
            row = " || '|' || ".join(f"coalesce({p}, '∅')" for p in parts)
            out[f"{schema}.{table}"] = con.execute(
                f"select count(*), md5(coalesce(string_agg(r, chr(10) order by r), '')) "
                f"from (select {row} as r from {schema}.{table})"
            ).fetchone()
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    data = tmp_path_factory.mktemp("incremental_nights")
    # the s tier of issue 13 (10,000 contacts), realistic noise (bots, second devices)
    ingest_world(data, WorldConfig(contacts=S_TIER_CONTACTS, profile="realistic"))
    full = data / "warehouse.duckdb"
    raw = data / "raw_final.duckdb"
    shutil.copy(full, raw)
    inc_dir = data / "incremental"
    inc_dir.mkdir()
    inc = inc_dir / "warehouse.duckdb"
    shutil.copy(full, inc)
    return full, raw, inc


def test_incremental_nights_equal_a_full_refresh_row_for_row(worlds):
    full, raw, inc = worlds
    arrived = []
    for i, night in enumerate(NIGHTS):
        arrived.append(raw_as_of(inc, raw, night))
        dbt(inc, night, *(["--full-refresh"] if i == 0 else []))
    # the full refresh reads the same final raw layer: what had arrived by the last night
    assert raw_as_of(full, raw, FINAL) == arrived[-1]
    dbt(full, FINAL, "--full-refresh")

    # the streams grew night by night, and late rows arrived after their night
    events = [a["raw_segment.events"] for a in arrived]
    assert events == sorted(events) and events[0] < events[-1]
    con = duckdb.connect(str(raw), read_only=True)
    key, received = STREAMS["raw_segment.events"]
    late_last_night = con.execute(
        f"""select count(*) from raw_segment.events
            where "timestamp" < timestamp '{NIGHTS[-2]}'
              and {arrival_sql(key, received)} >= timestamp '{NIGHTS[-2]}'
              and {arrival_sql(key, received)} < timestamp '{FINAL}'"""
    ).fetchone()[0]
    con.close()
    assert late_last_night > 0, "some events of earlier nights arrive on the last night"

    want, got = checksums(full), checksums(inc)
    assert set(got) == set(want)
    assert len(want) >= 30
    assert want["intermediate.int_sessions"][0] > 0
    assert want["marts.dim_contacts"][0] > 0
    differ = {t: (got[t], want[t]) for t in want if got[t] != want[t]}
    assert not differ, f"incremental != full refresh: {differ}"
