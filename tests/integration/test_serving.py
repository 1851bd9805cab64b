"""The serving snapshot: published whole, swapped atomically, opened read-only by BI."""

from __future__ import annotations

import duckdb
import pytest
import sqlalchemy

from lifecycle.config import settings
from lifecycle.warehouse import probe, publish, serving_connection, sqlalchemy_url


def _warehouse(contacts: int) -> None:
    s = settings()
    s.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(s.warehouse_path))
    con.execute("create schema if not exists marts; create schema if not exists audiences")
    con.execute("create schema if not exists ops; create schema if not exists raw_x")
    con.execute(
        f"create or replace table marts.dim_contacts as select 'c' || range::varchar "
        f"as contact_id, 'lead' as lifecycle_stage from range({contacts})"
    )
    con.execute(
        "create or replace table audiences.aud_sales_ready as "
        "select contact_id from marts.dim_contacts where contact_id like 'c1%'"
    )
    con.execute("create or replace table ops.sync_runs as select 1 as id")
    con.execute("create or replace table raw_x.secret as select 1 as id")
    con.close()


def test_publish_writes_a_whole_marked_snapshot_of_the_public_schemas(data_dir):
    _warehouse(50)
    counts = publish(night="2026-07-01", run_id="r1")
    assert counts == {"audiences.aud_sales_ready": 11, "marts.dim_contacts": 50, "ops.sync_runs": 1}
    con = serving_connection()
    assert probe(con) == ("2026-07-01", 0)
    schemas = {
        r[0]
        for r in con.execute(
            "select distinct table_schema from information_schema.tables"
        ).fetchall()
    }
    marker = con.execute(
        "select run_id, table_name, row_count from ops.serving_snapshot order by 2"
    ).fetchall()
    con.close()
    assert schemas == {"marts", "audiences", "ops"}  # raw_* is never served
    assert marker == [("r1", t, n) for t, n in sorted(counts.items())]
    assert not (data_dir / "serving.next.duckdb").exists()


def test_a_reader_holding_last_night_is_never_blocked_by_publish(data_dir):
    _warehouse(50)
    publish(night="2026-06-30", run_id="r0")
    old = serving_connection()  # a BI session open across the swap
    _warehouse(70)
    publish(night="2026-07-01", run_id="r1")  # must not fail on the reader's lock
    assert probe(old) == ("2026-06-30", 0)
    assert old.execute("select count(*) from marts.dim_contacts").fetchone()[0] == 50
    old.close()
    new = serving_connection()
    assert probe(new) == ("2026-07-01", 0)
    assert new.execute("select count(*) from marts.dim_contacts").fetchone()[0] == 70
    new.close()


def test_probe_detects_a_torn_snapshot(data_dir):
    _warehouse(5)
    publish(night="2026-07-01", run_id="r1")
    con = duckdb.connect(str(settings().serving_path))
    con.execute("delete from marts.dim_contacts where contact_id = 'c1'")
    assert probe(con) == ("2026-07-01", 1)
    con.close()


def test_bi_tools_connect_read_only_through_sqlalchemy(data_dir):
    _warehouse(20)
    publish(night="2026-07-01", run_id="r1")
    url = sqlalchemy_url()
    assert url == f"duckdb:///{settings().serving_path}?access_mode=read_only"
    engine = sqlalchemy.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sqlalchemy.text("select count(*) from marts.dim_contacts")).scalar()
        assert n == 20
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="read-only"):
            conn.execute(sqlalchemy.text("delete from marts.dim_contacts"))
    engine.dispose()
