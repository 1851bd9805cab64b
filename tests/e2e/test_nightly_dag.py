"""The whole nightly DAG, run with ``dag.test()`` against the sandbox, checked end to end."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import requests

from lifecycle.activation.hashing import hashed
from lifecycle.config import settings
from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
from lifecycle.sandbox.vendors import expected_counts
from lifecycle.sandbox.world import WorldConfig, truth_table

ROOT = Path(__file__).resolve().parents[2]
NIGHT = date(2026, 7, 1)
META_AUDIENCE = "23850000000000001"


@pytest.fixture(scope="module")
def nightly_run(airflow_db, dbt_manifest):
    """Simulate a world, serve it, run lifecycle_nightly once for its night."""
    from airflow.dag_processing.dagbag import DagBag

    s = settings()
    world = prepare(WorldConfig(contacts=400, seed=11, now=NIGHT), s.landing_dir)
    with SandboxServer(world) as srv:
        os.environ.update(connection_env(srv.base_url, s.landing_dir))
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags["lifecycle_nightly"]
        dagrun = dag.test(logical_date=datetime(2026, 7, 1, tzinfo=UTC))
        received = requests.get(f"{srv.base_url}/_sandbox/received/meta", timeout=10).json()
    return {"world": world, "dagrun": dagrun, "received": received, "settings": s}


pytestmark = pytest.mark.e2e


def test_run_succeeds(nightly_run):
    assert str(nightly_run["dagrun"].state) in ("success", "DagRunState.SUCCESS")


def test_raw_counts_equal_what_the_sandbox_served(nightly_run):
    world, s = nightly_run["world"], nightly_run["settings"]
    want = expected_counts(world, world.now_ts)
    con = duckdb.connect(str(s.warehouse_path))  # dbt-duckdb keeps one open in-process
    got = {
        "hubspot_contacts": "raw_hubspot.contacts",
        "hubspot_deals": "raw_hubspot.deals",
        "hubspot_companies": "raw_hubspot.companies",
        "segment_events": "raw_segment.events",
        "mailchimp_members": "raw_mailchimp.members",
        "mailchimp_campaigns": "raw_mailchimp.campaigns",
        "mailchimp_activity": "raw_mailchimp.email_activity",
    }
    counts = {k: con.execute(f"select count(*) from {t}").fetchone()[0] for k, t in got.items()}
    con.close()
    assert counts == want


def test_every_contact_has_exactly_one_stage(nightly_run):
    s = nightly_run["settings"]
    con = duckdb.connect(str(s.serving_path), read_only=True)
    n, distinct, staged = con.execute(
        "select count(*), count(distinct contact_id), count(lifecycle_stage) "
        "from marts.dim_contacts").fetchone()
    current = con.execute(
        "select max(n), min(n) from (select contact_id, count(*) n "
        "from marts.fct_lifecycle_stage_history where is_current group by 1)").fetchone()
    con.close()
    world = nightly_run["world"]
    assert n == distinct == staged == expected_counts(world, world.now_ts)["hubspot_contacts"]
    assert current == (1, 1)


def test_stages_agree_with_ground_truth(nightly_run):
    world, s = nightly_run["world"], nightly_run["settings"]
    truth = truth_table(world).set_index("hubspot_id").stage_at_now
    con = duckdb.connect(str(s.serving_path), read_only=True)
    model = dict(con.execute("select contact_id, lifecycle_stage from marts.dim_contacts")
                 .fetchall())
    con.close()
    agree = sum(model.get(cid) == stage for cid, stage in truth.items()) / len(truth)
    assert agree >= 0.95, f"stage agreement {agree:.3f}"


def test_meta_received_exactly_the_audience(nightly_run):
    s = nightly_run["settings"]
    con = duckdb.connect(str(s.serving_path), read_only=True)
    rows = con.execute("select email from audiences.aud_sales_ready").fetchall()
    con.close()
    wh = duckdb.connect(str(s.warehouse_path))  # dbt-duckdb keeps one open in-process
    runs = wh.execute("select status, accepted, rejected from ops.sync_runs "
                      "where audience = 'sales_ready' and destination = 'meta'").fetchall()
    wh.close()
    assert runs == [("success", len(rows), 0)]
    expected = {hashed("EMAIL", e) for (e,) in rows}
    members = {tuple(m)[0] for m in nightly_run["received"]["members"][META_AUDIENCE]}
    assert len(expected) > 10
    assert members == expected
    # every call respected Meta's 10,000-rows-per-call limit and sent only hashes
    for call in nightly_run["received"]["calls"]:
        assert call["schema"] == ["EMAIL"]
        assert len(call["data"]) <= 10_000
        assert all(len(r[0]) == 64 for r in call["data"])
