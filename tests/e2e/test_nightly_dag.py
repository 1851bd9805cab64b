"""The whole nightly DAG, run with ``dag.test()`` against the sandbox, checked end to end.

While the DAG runs, a separate reader process queries the serving snapshot in a loop
(as a BI tool would): it must never hit a lock error and never see half a night.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import requests

from lifecycle.activation.hashing import hashed, normalize_email_google
from lifecycle.config import settings
from lifecycle.sandbox.accounts import erased_at_first_load, gone_at_first_load
from lifecycle.sandbox.expected import expected_counts
from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
from lifecycle.sandbox.world import WorldConfig, truth_table

ROOT = Path(__file__).resolve().parents[2]
NIGHT = date(2026, 7, 1)
META_AUDIENCE = "23850000000000001"


PREVIOUS_NIGHT = "2026-06-30"

#: The BI reader: opens the serving file read-only, one whole-snapshot probe per
#: connection, until told to stop; counts lock errors, other errors and torn snapshots.
READER = r"""
import json, sys, time, duckdb
from lifecycle.warehouse import probe
path, stop, out = sys.argv[1:4]
stats = {"queries": 0, "lock_errors": 0, "other_errors": [], "torn": 0, "nights": {}}
stopping = None
while True:
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            night, torn = probe(con)
        finally:
            con.close()
        stats["queries"] += 1
        stats["torn"] += torn
        stats["nights"][night] = stats["nights"].get(night, 0) + 1
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            stats["lock_errors"] += 1
        else:
            stats["other_errors"].append(str(exc)[:200])
    if stopping is None:
        try:
            open(stop).close()
            stopping = time.monotonic()
        except FileNotFoundError:
            pass
    elif time.monotonic() - stopping > 1.0:
        break
    time.sleep(0.05)
json.dump(stats, open(out, "w"))
"""


def _previous_snapshot(path: Path) -> None:
    """A small snapshot of the previous night, as publish would have left it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema ops; create schema audiences")
    con.execute(
        "create table marts.dim_contacts as select 'c' || range::varchar as "
        "contact_id, 'lead' as lifecycle_stage from range(3)"
    )
    con.execute("create table audiences.aud_sales_ready as select 'c1' as contact_id")
    con.execute("""create table ops.serving_snapshot (night date, run_id varchar,
        published_at timestamp, table_name varchar, row_count bigint)""")
    con.execute(f"""insert into ops.serving_snapshot values
        ('{PREVIOUS_NIGHT}', 'prev', now()::timestamp, 'marts.dim_contacts', 3),
        ('{PREVIOUS_NIGHT}', 'prev', now()::timestamp, 'audiences.aud_sales_ready', 1)""")
    con.close()


@pytest.fixture(scope="module")
def nightly_run(airflow_db, dbt_manifest):
    """Simulate a world, serve it, run lifecycle_nightly once for its night, with a BI
    reader process querying the serving snapshot the whole time."""
    from airflow.dag_processing.dagbag import DagBag

    s = settings()
    world = prepare(WorldConfig(contacts=400, seed=11, now=NIGHT), s.landing_dir)
    _previous_snapshot(s.serving_path)
    stop, stats_path = s.data_dir / "reader.stop", s.data_dir / "reader-stats.json"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(s.serving_path), str(stop), str(stats_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    try:
        with SandboxServer(world) as srv:
            # Customer Match jobs run for 25 s of vendor time: the sensor must reschedule
            srv.app.state.sandbox.google_ads_job_runtime_s = 25.0
            os.environ.update(connection_env(srv.base_url, s.landing_dir))
            dag = DagBag(dag_folder=str(ROOT / "dags")).dags["lifecycle_nightly"]
            started = time.monotonic()
            dagrun = dag.test(logical_date=datetime(2026, 7, 1, tzinfo=UTC))
            seconds = time.monotonic() - started
            received = requests.get(f"{srv.base_url}/_sandbox/received/meta", timeout=10).json()
            google = srv.app.state.sandbox.__dict__["destinations"].get("google_ads", {})
        reschedules = _reschedules(dagrun, "activate.wait_for_vendor_jobs")
        stop.touch()
        reader.wait(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    stats = json.loads(stats_path.read_text())
    print(
        f"\nBI reader during the DAG run ({seconds:.0f}s): {stats['queries']} queries, "
        f"{stats['lock_errors']} lock errors, {len(stats['other_errors'])} other errors, "
        f"{stats['torn']} torn snapshots, nights seen {stats['nights']}"
    )
    return {
        "world": world,
        "dagrun": dagrun,
        "received": received,
        "settings": s,
        "reader": stats,
        "google": google,
        "reschedules": reschedules,
    }


def _reschedules(dagrun, task_id: str) -> int:
    """How often a task was rescheduled (given back its worker slot) in this run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        ti_id = session.scalar(
            select(TaskInstance.id).where(
                TaskInstance.dag_id == dagrun.dag_id,
                TaskInstance.run_id == dagrun.run_id,
                TaskInstance.task_id == task_id,
            )
        )
        return session.scalar(
            select(func.count()).select_from(TaskReschedule).where(TaskReschedule.ti_id == ti_id)
        )


pytestmark = pytest.mark.e2e


def test_run_succeeds(nightly_run):
    assert str(nightly_run["dagrun"].state) in ("success", "DagRunState.SUCCESS")


def test_raw_counts_equal_what_the_sandbox_served(nightly_run):
    """Every record served is in raw, except the people the night found erased
    (archived in HubSpot or Mailchimp): ingest.erasures purged all their rows."""
    world, s = nightly_run["world"], nightly_run["settings"]
    erased = erased_at_first_load(world, world.now_ts)
    assert len(erased) > 0, "the world has archived records"
    want = expected_counts(world, world.now_ts, purged=erased)
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
        "from marts.dim_contacts"
    ).fetchone()
    current = con.execute(
        "select max(n), min(n) from (select contact_id, count(*) n "
        "from marts.fct_lifecycle_stage_history where is_current group by 1)"
    ).fetchone()
    con.close()
    world = nightly_run["world"]
    erased = erased_at_first_load(world, world.now_ts)
    want = expected_counts(world, world.now_ts, purged=erased)["hubspot_contacts"]
    assert n == distinct == staged == want
    assert current == (1, 1)


def test_stages_agree_with_ground_truth(nightly_run):
    world, s = nightly_run["world"], nightly_run["settings"]
    truth = truth_table(world)
    # archived or deleted at the vendors: rightly in no mart (sandbox/accounts.py)
    truth = truth[~truth.person.isin(gone_at_first_load(world, world.now_ts))]
    truth = truth.set_index("hubspot_id").stage_at_now
    con = duckdb.connect(str(s.serving_path), read_only=True)
    model = dict(
        con.execute("select contact_id, lifecycle_stage from marts.dim_contacts").fetchall()
    )
    con.close()
    agree = sum(model.get(cid) == stage for cid, stage in truth.items()) / len(truth)
    assert agree >= 0.95, f"stage agreement {agree:.3f}"


def test_meta_received_exactly_the_audience(nightly_run):
    s = nightly_run["settings"]
    con = duckdb.connect(str(s.serving_path), read_only=True)
    rows = con.execute("select email from audiences.aud_sales_ready").fetchall()
    con.close()
    wh = duckdb.connect(str(s.warehouse_path))  # dbt-duckdb keeps one open in-process
    runs = wh.execute(
        "select status, accepted, rejected from ops.sync_runs "
        "where audience = 'sales_ready' and destination = 'meta'"
    ).fetchall()
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


def test_google_ads_job_was_waited_for_by_rescheduling_and_its_list_is_the_audience(
    nightly_run,
):
    s = nightly_run["settings"]
    con = duckdb.connect(str(s.serving_path), read_only=True)
    rows = con.execute("select email from audiences.aud_sales_ready").fetchall()
    con.close()
    wh = duckdb.connect(str(s.warehouse_path))
    runs = wh.execute(
        "select status, sent, accepted, rejected from ops.sync_runs "
        "where audience = 'sales_ready' and destination = 'google_ads'"
    ).fetchall()
    jobs = wh.execute("select status, count(*) from ops.sync_jobs group by 1").fetchall()
    wh.close()
    assert runs == [("success", len(rows), len(rows), 0)]
    assert jobs == [("done", 1)]
    lists = nightly_run["google"]["lists"]
    (held,) = lists.values()
    want = {hashlib.sha256(normalize_email_google(e).encode()).hexdigest() for (e,) in rows}
    assert set(held) == want
    # the sensor gave its worker back between pokes at least once while the job ran
    assert nightly_run["reschedules"] >= 1


def test_bi_reader_never_blocked_and_saw_only_whole_nights(nightly_run):
    stats = nightly_run["reader"]
    assert stats["queries"] >= 100
    assert stats["lock_errors"] == 0
    assert stats["other_errors"] == []
    assert stats["torn"] == 0
    # the previous night until publish swapped the file, then the new one; nothing else
    assert set(stats["nights"]) == {PREVIOUS_NIGHT, NIGHT.isoformat()}


def test_quality_gate_ran_every_check_and_passed(nightly_run):
    s = nightly_run["settings"]
    con = duckdb.connect(str(s.serving_path), read_only=True)
    rows = con.execute(
        "select suite, status, count(*) from ops.quality_results "
        "where night = ? group by all order by all",
        [NIGHT],
    ).fetchall()
    night, torn = con.execute(
        "select max(night)::varchar, count(*) filter (where row_count is null) "
        "from ops.serving_snapshot"
    ).fetchone()
    con.close()
    suites = {r[0] for r in rows}
    assert {
        "freshness",
        "raw_hubspot",
        "raw_segment",
        "raw_mailchimp",
        "marts",
        "marts_drift",
    } <= suites
    assert not [r for r in rows if r[1] == "fail"]
    assert (night, torn) == (NIGHT.isoformat(), 0)
    docs = s.data_dir / "quality/gx/uncommitted/data_docs/local_site/index.html"
    assert "marts.dim_contacts" in docs.read_text()


def test_run_report_has_funnel_transitions_and_matches_the_snapshot(nightly_run):
    s = nightly_run["settings"]
    out = s.serving_path.parent / "reports" / NIGHT.isoformat()
    for png in ("funnel.png", "transitions.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "summary.md").read_text()
    html = (out / "summary.html").read_text()
    con = duckdb.connect(str(s.serving_path), read_only=True)
    stages = con.execute(
        "select lifecycle_stage, count(*) from marts.dim_contacts group by 1"
    ).fetchall()
    con.close()
    for stage, n in stages:
        assert f"| {stage} | {n} |" in md
        assert f"<td>{stage}</td><td>{n}</td>" in html
    assert '<img alt="funnel" src="funnel.png">' in html
    summary = json.loads((s.data_dir / "runs" / NIGHT.isoformat() / "summary.json").read_text())
    assert summary["report"] == str(out / "summary.html")


def test_the_night_erased_the_archived_and_kept_them_out_of_every_mart(nightly_run):
    """Archived in HubSpot or Mailchimp before the night: in ops.erasures (hashes only),
    in no table of the serving snapshot."""
    import hashlib

    world, s = nightly_run["world"], nightly_run["settings"]
    erased = erased_at_first_load(world, world.now_ts)
    emails = world.contacts.email.to_numpy()[erased]
    ids = set(world.contacts.hubspot_id.to_numpy()[erased])
    wh = duckdb.connect(str(s.warehouse_path))  # dbt-duckdb keeps one open in-process
    hashes = {r[0] for r in wh.execute("select email_sha256 from ops.erasures").fetchall()}
    wh.close()
    assert hashes == {hashlib.sha256(e.strip().lower().encode()).hexdigest() for e in emails}
    con = duckdb.connect(str(s.serving_path), read_only=True)
    tables = con.execute(
        "select table_schema, table_name from information_schema.columns "
        "where column_name = 'contact_id' and table_schema in ('marts', 'audiences')"
    ).fetchall()
    found = {
        f"{schema}.{table}"
        for schema, table in tables
        if con.execute(
            f"select count(*) from {schema}.{table} where contact_id in "
            f"(select unnest(?::varchar[]))",
            [sorted(ids)],
        ).fetchone()[0]
    }
    con.close()
    assert len(tables) > 10 and found == set()
