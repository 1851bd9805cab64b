"""Fail fast on what a retry cannot fix, retry what it can (issue 10 item 2).

The nightly DAG's default_args retry every task twice. Measured here under
``dag.test()`` on the real DAG file, one task at a time (a subset of the DAG) with its
retry delay shortened to a second, so a retry that should not happen shows as a second
try instead of minutes of waiting:

- a dbt model whose SQL cannot bind (finding 1's own binder error) fails its Cosmos
  task on the first try, the model and the error in the log;
- Mailchimp answering 404 for a list that does not exist fails the ingest on the first
  try;
- HubSpot answering 503 on every call is still retried (three tries).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
NIGHT = datetime(2026, 7, 1, tzinfo=UTC)
#: The same SQL stg_mailchimp__members had on 3782d48: a text column "at time zone".
BROKEN_MODEL = """select id, cast((timestamp_signup at time zone 'UTC') as timestamp) as signup_at
from {{ source('mailchimp', 'members') }}
"""


def _dag(task_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["lifecycle_nightly"].partial_subset(task_ids=[task_id], include_upstream=False)
    task = dag.get_task(task_id)
    assert task.retries == 2, "the DAG's default: retries stay on"
    task.retry_delay = timedelta(seconds=1)
    task.retry_exponential_backoff = False
    return dag


def _tries(dagrun, task_id: str) -> tuple[str, int]:
    (ti,) = [t for t in dagrun.get_task_instances() if t.task_id == task_id]
    return str(ti.state), int(ti.try_number)


@pytest.fixture()
def broken_project(tmp_path, monkeypatch, data_dir):
    """A copy of the dbt project with one model that cannot bind, parsed, and a
    warehouse whose Mailchimp members carry timestamp_signup as text ("")."""
    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "staging" / "zz_broken_model.sql").write_text(BROKEN_MODEL)
    monkeypatch.setenv("LIFECYCLE_DBT_PROJECT_DIR", str(project))
    # Cosmos' in-process dbt runner writes the task's env into os.environ and leaves it:
    # set the same values here so monkeypatch puts the originals back afterwards
    monkeypatch.setenv("LIFECYCLE_WAREHOUSE_PATH", str(data_dir / "warehouse.duckdb"))
    monkeypatch.setenv("LIFECYCLE_DBT_TARGET", "duckdb")
    env = {**os.environ, "DBT_PROFILES_DIR": str(project)}
    dbt = str(Path(sys.executable).parent / "dbt")
    subprocess.run(
        [dbt, "parse", "--project-dir", str(project), "--profiles-dir", str(project)],
        env=env,
        check=True,
        capture_output=True,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    con.execute("create schema raw_mailchimp")
    con.execute("create table raw_mailchimp.members as select 'm1' as id, '' as timestamp_signup")
    con.close()
    return project


def test_a_sql_error_fails_the_dbt_task_on_its_first_try(airflow_db, broken_project, capfd):
    task_id = "transform.zz_broken_model_run"
    dag = _dag(task_id)
    started = time.monotonic()
    dagrun = dag.test(logical_date=NIGHT)
    seconds = time.monotonic() - started
    state, tries = _tries(dagrun, task_id)
    out = capfd.readouterr()
    log = out.out + out.err
    print(f"\nbroken dbt model: {state} after {tries} try in {seconds:.1f}s under dag.test()")
    assert state == "failed"
    assert tries == 1, f"a deterministic SQL error was tried {tries} times"
    assert "model.lifecycle.zz_broken_model" in log
    assert "Binder Error" in log and "timezone" in log
    assert "not retried" in log


def test_a_404_from_a_vendor_fails_the_ingest_on_its_first_try(
    airflow_db, sandbox, capfd, caplog, monkeypatch
):
    conn = json.loads(os.environ["AIRFLOW_CONN_MAILCHIMP_DEFAULT"])
    conn["extra"]["list_ids"] = ["nosuchlist"]
    monkeypatch.setenv("AIRFLOW_CONN_MAILCHIMP_DEFAULT", json.dumps(conn))
    task_id = "ingest.mailchimp"
    dag = _dag(task_id)
    with caplog.at_level(logging.INFO):
        dagrun = dag.test(logical_date=NIGHT)
    state, tries = _tries(dagrun, task_id)
    out = capfd.readouterr()
    # the task's log reaches stdout or the logging handlers, depending on what ran before
    log = out.out + out.err + caplog.text
    assert (state, tries) == ("failed", 1)
    assert "HTTP 404" in log and "nosuchlist" in log and "not retried" in log


def test_a_vendor_that_keeps_answering_503_is_still_retried(airflow_db, sandbox, monkeypatch):
    conn = json.loads(os.environ["AIRFLOW_CONN_HUBSPOT_DEFAULT"])
    conn["extra"].update({"max_retries": 1, "backoff_s": 0.01, "max_backoff_s": 0.02})
    monkeypatch.setenv("AIRFLOW_CONN_HUBSPOT_DEFAULT", json.dumps(conn))
    r = requests.post(
        f"{sandbox.base_url}/_sandbox/faults/hubspot", json=[{"status": 503}] * 200, timeout=5
    )
    r.raise_for_status()
    task_id = "ingest.hubspot"
    dag = _dag(task_id)
    dagrun = dag.test(logical_date=NIGHT)
    state, tries = _tries(dagrun, task_id)
    assert (state, tries) == ("failed", 3), "retries=2: three tries in all"
