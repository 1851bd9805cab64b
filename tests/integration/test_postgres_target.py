"""The same dbt models build on the ``postgres`` target against the real PostgreSQL.

Raw tables are ingested into DuckDB by the real connectors, copied into a fresh
PostgreSQL database with psycopg2, then ``dbt build --target postgres`` runs every model
and test there. The result must equal the DuckDB build row for row. PostgreSQL missing
is a failure, never a skip.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg2
import pytest
from sources_support import ingest_world

from lifecycle.sandbox.world import WorldConfig, truth_table

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
NIGHT = "2026-07-01"
PG = {
    "host": os.environ.get("LIFECYCLE_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("LIFECYCLE_PG_PORT", "5432")),
    "user": os.environ.get("LIFECYCLE_PG_USER", "postgres"),
}
PG_TYPES = {
    "VARCHAR": "text",
    "BOOLEAN": "boolean",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE": "double precision",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamp",
    "DATE": "date",
    "JSON": "jsonb",
}

pytestmark = pytest.mark.postgres


def pg_connect(dbname: str = "postgres"):
    try:
        return psycopg2.connect(dbname=dbname, connect_timeout=5, **PG)
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG['host']}:{PG['port']} as {PG['user']} "
            f"({exc}). Start it (trust auth for local connections); this test never skips.",
            pytrace=False,
        )


def pg_type(duck_type: str) -> str:
    if duck_type.startswith("DECIMAL"):
        return "numeric"
    return PG_TYPES.get(duck_type, "text")


def copy_raw_to_postgres(warehouse: Path, dbname: str) -> dict[str, int]:
    """Every table of the raw_* schemas (and ops.erasure*), same names and columns."""
    duck = duckdb.connect(str(warehouse), read_only=True)
    pg = pg_connect(dbname)
    copied = {}
    try:
        tables = duck.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema like 'raw_%' "
            # erasures: staging reads them (dbt source ops.erasures)
            "or (table_schema = 'ops' and table_name like 'erasure%') order by 1, 2"
        ).fetchall()
        with pg, pg.cursor() as cur:
            for schema, table in tables:
                cols = duck.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                cur.execute(f'create schema if not exists "{schema}"')
                ddl = ", ".join(f'"{c}" {pg_type(t)}' for c, t in cols)
                cur.execute(f'create table "{schema}"."{table}" ({ddl})')
                df = duck.execute(f'select * from "{schema}"."{table}"').df()
                buf = io.StringIO()
                df.to_csv(buf, index=False, header=False)
                buf.seek(0)
                cur.copy_expert(f'copy "{schema}"."{table}" from stdin with (format csv)', buf)
                copied[f"{schema}.{table}"] = len(df)
    finally:
        duck.close()
        pg.close()
    return copied


def dbt(target: str, env: dict[str, str], workdir: Path, *args: str) -> None:
    project = str(ROOT / "dbt_project")
    cmd = [
        DBT,
        *args,
        "--project-dir",
        project,
        "--profiles-dir",
        project,
        "--target",
        target,
        "--target-path",
        str(workdir / f"target_{target}"),
        "--log-path",
        str(workdir / f"logs_{target}"),
        "--vars",
        f"{{as_of: '{NIGHT}'}}",
    ]
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"dbt {' '.join(args)} --target {target}:\n{proc.stdout[-5000:]}"


@pytest.fixture(scope="module")
def both_targets(tmp_path_factory):
    """One small world ingested into DuckDB, built there and on PostgreSQL."""
    data = tmp_path_factory.mktemp("pg_target")
    world = ingest_world(data, WorldConfig(contacts=250, seed=5))
    warehouse = data / "warehouse.duckdb"
    dbname = f"lifecycle_test_{os.getpid()}"
    admin = pg_connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{dbname}"')
        cur.execute(f'create database "{dbname}"')
    try:
        copied = copy_raw_to_postgres(warehouse, dbname)
        dbt(
            "duckdb",
            {"LIFECYCLE_WAREHOUSE_PATH": str(warehouse)},
            data,
            "build",
            "--resource-type",
            "seed",
            "--resource-type",
            "model",
        )
        dbt(
            "postgres",
            {"LIFECYCLE_PG_DATABASE": dbname, "LIFECYCLE_DBT_TARGET": "postgres"},
            data,
            "build",
        )
        yield {"world": world, "warehouse": warehouse, "dbname": dbname, "copied": copied}
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{dbname}" with (force)')
        admin.close()


def rows(target: dict, sql: str) -> list[tuple]:
    duck = duckdb.connect(str(target["warehouse"]), read_only=True)
    try:
        return duck.execute(sql).fetchall()
    finally:
        duck.close()


def pg_rows(target: dict, sql: str) -> list[tuple]:
    pg = pg_connect(target["dbname"])
    try:
        with pg.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        pg.close()


def test_raw_tables_were_copied(both_targets):
    copied = both_targets["copied"]
    assert copied["raw_hubspot.contacts"] > 0 and copied["raw_segment.events"] > 0


def test_postgres_contacts_equal_duckdb_contacts(both_targets):
    sql = (
        "select contact_id, lifecycle_stage, lead_score, lead_grade, engagement_segment, "
        "first_touch_channel, orders_count, has_email_consent, has_ad_consent "
        "from marts.dim_contacts order by contact_id"
    )
    duck, pg = rows(both_targets, sql), pg_rows(both_targets, sql)
    assert len(pg) == len(duck) > 0
    assert pg == duck


def test_postgres_history_sessions_and_audiences_equal_duckdb(both_targets):
    for sql in (
        "select stage_history_id, stage, transition_type from marts.fct_lifecycle_stage_history "
        "order by 1",
        "select contact_id, count(*), sum(page_views) from marts.fct_sessions "
        "where contact_id is not null group by 1 order by 1",
        "select stage, sum(contacts_reached), sum(contacts_converted) "
        "from marts.fct_lifecycle_funnel group by 1 order by 1",
        "select rfm_segment, count(*) from marts.dim_customers group by 1 order by 1",
        "select contact_id from audiences.aud_sales_ready order by 1",
        "select contact_id from audiences.aud_win_back order by 1",
    ):
        assert pg_rows(both_targets, sql) == rows(both_targets, sql), sql


def test_postgres_stages_agree_with_ground_truth(both_targets):
    truth = truth_table(both_targets["world"])
    truth = dict(zip(truth.hubspot_id, truth.stage_at_now, strict=True))
    model = dict(
        pg_rows(both_targets, "select contact_id, lifecycle_stage from marts.dim_contacts")
    )
    assert len(model) > 0
    agree = sum(truth.get(cid) == stage for cid, stage in model.items()) / len(model)
    assert agree >= 0.95
