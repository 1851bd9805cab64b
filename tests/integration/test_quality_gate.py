"""The quality gate on a real warehouse: a good night passes, a broken world is stopped.

The raw layer is ingested once from the sandbox over real HTTP; each test breaks a copy
of it the way a misbehaving source would (duplicate keys, an empty day, a schema change,
a stale source, timestamps from the future) and calls the quality task functions, which
must refuse the night with a message naming the expectation and the offending counts.
No extra DAG run: the DAG wiring that turns a failed check into a skipped publish and
activate is asserted on the parsed DAG.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from lifecycle.quality.gate import QualityGateFailed
from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
from lifecycle.sandbox.world import WorldConfig

ROOT = Path(__file__).resolve().parents[2]
NIGHT = "2026-07-01"
#: rows of the night's own day, inside the partition the raw event checks read
NIGHTS = "where \"timestamp\" >= timestamp '2026-06-30' order by message_id limit 2"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, dbt_manifest) -> Path:
    """A warehouse with the three raw sources of a small world, loaded over HTTP."""
    from lifecycle.tasks import ingest

    d = tmp_path_factory.mktemp("baseline") / "data"
    with pytest.MonkeyPatch.context() as mp:
        _point_at(mp, d)
        world = prepare(WorldConfig(contacts=300, seed=7, now=date(2026, 7, 1)), d / "landing")
        with SandboxServer(world) as srv:
            for k, v in connection_env(srv.base_url, d / "landing").items():
                mp.setenv(k, v)
            for source in ("hubspot", "segment", "mailchimp"):
                ingest(source)
    return d / "warehouse.duckdb"


def _point_at(mp, d: Path) -> None:
    mp.setenv("LIFECYCLE_DATA_DIR", str(d))
    mp.setenv("DLT_DATA_DIR", str(d / "dlt"))
    for var in (
        "LIFECYCLE_WAREHOUSE_PATH",
        "LIFECYCLE_SERVING_PATH",
        "LIFECYCLE_LANDING_DIR",
        "LIFECYCLE_DLT_DIR",
    ):
        mp.delenv(var, raising=False)


@pytest.fixture()
def warehouse(baseline, tmp_path, monkeypatch) -> Path:
    """A private copy of the baseline warehouse, the settings pointed at it."""
    d = tmp_path / "data"
    d.mkdir()
    shutil.copy(baseline, d / "warehouse.duckdb")
    _point_at(monkeypatch, d)
    return d / "warehouse.duckdb"


def _sql(path: Path, *statements: str) -> None:
    con = duckdb.connect(str(path))
    for s in statements:
        con.execute(s)
    con.close()


def _results(path: Path, run_id: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    rows = con.execute(
        "select suite, check_name, status, offending_rows, observed from ops.quality_results "
        "where run_id = ? order by suite, check_name",
        [run_id],
    ).fetchall()
    con.close()
    return rows


def _check(kind: str, run_id: str = "test_run"):
    from lifecycle.tasks import quality_check

    return quality_check(kind, run_id, NIGHT)


def test_a_good_night_passes_every_raw_check_and_builds_data_docs(warehouse):
    raw = _check("raw")
    fresh = _check("freshness")
    assert raw["fail"] == 0 and raw["pass"] >= 30
    assert fresh["fail"] == 0 and fresh["pass"] >= 2
    rows = _results(warehouse, "test_run")
    assert {r[0] for r in rows} == {"raw_hubspot", "raw_segment", "raw_mailchimp", "freshness"}
    assert all(r[2] in ("pass", "warn") for r in rows)
    volume = next(r for r in rows if "events_daily_volume" in r[1])
    assert json.loads(volume[4])["trailing_avg"] > 0
    docs = warehouse.parent / "quality/gx/uncommitted/data_docs/local_site/index.html"
    assert docs.exists()
    assert any(docs.parent.glob("validations/**/*.html"))


def test_duplicate_keys_stop_the_night_naming_the_expectation_and_count(warehouse):
    _sql(
        warehouse,
        "insert into raw_hubspot.contacts select * from raw_hubspot.contacts order by id limit 3",
    )
    with pytest.raises(QualityGateFailed) as err:
        _check("raw")
    msg = str(err.value)
    # three keys now appear twice: six rows break uniqueness
    assert "contacts.expect_column_values_to_be_unique(id) on raw_hubspot.contacts" in msg
    assert "6 offending rows" in msg
    failed = [r for r in _results(warehouse, "test_run") if r[2] == "fail"]
    assert [(r[1], r[3]) for r in failed] == [("contacts.expect_column_values_to_be_unique(id)", 6)]


def test_an_empty_day_fails_the_volume_band(warehouse):
    _sql(
        warehouse,
        'delete from raw_segment.events where "timestamp" >= timestamp '
        "'2026-06-30' and \"timestamp\" < timestamp '2026-07-01'",
    )
    with pytest.raises(QualityGateFailed) as err:
        _check("raw")
    (failed,) = err.value.failed
    assert failed.check == "events_daily_volume.expect_column_values_to_be_between(day_rows)"
    assert failed.observed["examples"] == ["0"]
    assert failed.observed["min_value"] >= 1
    assert "trailing_avg=" in str(err.value)


def test_a_schema_change_fails_naming_the_missing_column(warehouse):
    _sql(warehouse, 'alter table raw_segment.events rename column "type" to event_type')
    with pytest.raises(QualityGateFailed) as err:
        _check("raw")
    by_check = {r.check: r for r in err.value.failed}
    schema = by_check["events.expect_table_columns_to_match_set"]
    assert schema.observed["missing_columns"] == ["type"]
    assert "missing_columns=['type']" in str(err.value)
    assert "events.expect_column_values_to_be_in_set(type)" in by_check


def test_a_stale_source_fails_freshness_naming_the_source(warehouse):
    _sql(
        warehouse,
        *[
            f"update raw_hubspot.{t} set updated_at = updated_at - interval 30 day"
            for t in ("contacts", "companies", "deals")
        ],
    )
    with pytest.raises(QualityGateFailed) as err:
        _check("freshness")
    (failed,) = err.value.failed
    assert failed.check == "source_freshness(hubspot)"
    assert failed.observed["age_hours"] > failed.observed["limit_hours"] == 168.0
    assert "source_freshness(hubspot)" in str(err.value)


def test_timestamps_after_the_night_fail(warehouse):
    _sql(
        warehouse,
        "update raw_segment.events set \"timestamp\" = timestamp '2026-07-09' "
        "where message_id = (select min(message_id) from raw_segment.events)",
    )
    with pytest.raises(QualityGateFailed) as err:
        _check("raw")
    checks = {r.check for r in err.value.failed}
    assert "events.expect_column_max_to_be_between(timestamp)" in checks


def test_raw_event_checks_read_the_nights_partition_not_the_history(warehouse):
    _check("raw", "partition_run")
    rows = {r[1]: json.loads(r[4]) for r in _results(warehouse, "partition_run")}
    con = duckdb.connect(str(warehouse), read_only=True)
    total, recent = con.execute(
        """select count(*), count(*) filter (where "timestamp" >= timestamp '2026-06-27'
           or "timestamp" is null) from raw_segment.events"""
    ).fetchone()
    con.close()
    counted = rows["events.expect_column_values_to_not_be_null(message_id)"]["element_count"]
    assert counted == recent < total
    assert rows["events.expect_column_values_to_not_be_null(message_id)"]["partition"] == (
        "timestamp >= 2026-06-27 00:00"
    )


def test_a_failed_gate_cannot_reach_publish_or_activate(dbt_manifest, warehouse):
    """The wiring: every check gates publish (all_success), publish gates every sync, and a
    failed check fails at once (no retries) when run as the DAG's own task."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import AirflowFailException

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["lifecycle_nightly"]
    publish = dag.get_task("publish")
    assert str(publish.trigger_rule) in ("all_success", "TriggerRule.ALL_SUCCESS")
    checks = {"quality.freshness", "quality.raw_checks", "quality.dbt_tests", "quality.mart_checks"}
    assert checks <= publish.upstream_task_ids
    for t in checks:
        assert str(dag.get_task(t).trigger_rule) in ("all_success", "TriggerRule.ALL_SUCCESS")
    sync = dag.get_task("activate.sync")
    assert "publish" in sync.get_flat_relative_ids(upstream=True)
    assert str(sync.trigger_rule) in ("all_success", "TriggerRule.ALL_SUCCESS")
    # the DAG's own task callable turns a failed gate into a no-retry failure
    _sql(warehouse, f"insert into raw_segment.events select * from raw_segment.events {NIGHTS}")
    with pytest.raises(AirflowFailException, match=r"expect_column_values_to_be_unique"):
        dag.get_task("quality.raw_checks").python_callable(run_id="wired", ds=NIGHT)


def test_duplicates_of_old_events_are_caught_by_dbts_key_tests(warehouse, tmp_path):
    """GE reads the night's partition; keys over the whole table are dbt's source tests,
    which run in the same gate (quality.dbt_tests)."""
    _sql(
        warehouse,
        "insert into raw_segment.events select * from raw_segment.events "
        "where \"timestamp\" < timestamp '2026-06-01' limit 3",
    )
    assert _check("raw", "old_dups")["fail"] == 0  # outside the partition GE reads
    project = str(ROOT / "dbt_project")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "test", "--select", "source:segment.events"]
        + ["--project-dir", project, "--profiles-dir", project]
        + ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")],
        env={**os.environ, "LIFECYCLE_WAREHOUSE_PATH": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "FAIL 3 source_unique_segment_events_message_id" in proc.stdout


def test_the_cli_shows_a_failing_gate_on_a_broken_copy(warehouse, tmp_path):
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecycle.cli",
            "quality",
            "--break",
            "duplicate-keys",
            "--checks",
            "raw",
            "--copy-to",
            str(tmp_path / "broken"),
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 1, out.stderr
    assert (
        "FAIL  raw_hubspot: contacts.expect_column_values_to_be_unique(id) on "
        "raw_hubspot.contacts: 10 offending rows"
    ) in out.stdout
    assert "GATE FAILED: publish and activate would not run" in out.stdout
    assert str(tmp_path / "broken" / "quality") in out.stdout  # its Data Docs
    con = duckdb.connect(str(warehouse), read_only=True)  # the original is untouched
    dupes = con.execute("select count(*) - count(distinct id) from raw_hubspot.contacts")
    assert dupes.fetchone()[0] == 0
    con.close()
