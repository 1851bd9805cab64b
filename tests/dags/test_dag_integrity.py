"""Every DAG imports cleanly and follows the house rules (tags, retries, no cycles)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag(dbt_manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "lifecycle_nightly" in dagbag.dag_ids


def test_every_dag_has_tags_retries_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md and "How to re-run" in dag.doc_md, f"{dag_id} doc_md incomplete"
        assert dag.catchup is False
        assert dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.retries >= 2, f"{dag_id}.{task.task_id} retries={task.retries}"


def test_no_cycles_and_stage_order(dagbag):
    dag = dagbag.dags["lifecycle_nightly"]
    # topological_sort raises on a cycle
    order = [t.task_id for t in dag.topological_sort()]
    first = {
        g: min(i for i, t in enumerate(order) if t.startswith(g + ".") or t == g)
        for g in ("ingest", "transform", "quality", "publish")
    }
    assert first["ingest"] < first["transform"] < first["quality"] < first["publish"]
    sync = dag.get_task("activate.sync")
    assert "publish" in sync.get_flat_relative_ids(upstream=True)
    assert "quality.mart_checks" in sync.get_flat_relative_ids(upstream=True)


def test_every_warehouse_writer_uses_the_one_slot_pool(dagbag):
    dag = dagbag.dags["lifecycle_nightly"]
    writers = [
        t
        for t in dag.tasks
        if t.task_id.split(".")[0] in ("ingest", "transform", "quality", "publish")
        or t.task_id == "activate.sync"
    ]
    assert writers
    assert {t.pool for t in writers} == {"warehouse"}


def test_dag_file_does_no_heavy_imports(dbt_manifest):
    """The scheduler re-parses DAG files constantly: no GE, dlt or source code at parse."""
    import json
    import subprocess
    import sys

    probe = (
        "import runpy, sys, json; runpy.run_path(sys.argv[1]); "
        "print(json.dumps([m for m in ('great_expectations', 'dlt', 'lifecycle.sources.common',"
        " 'lifecycle.activation.engine') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "dags" / "lifecycle_nightly.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_activate_waits_for_vendor_jobs_without_holding_a_worker(dagbag):
    """Google Ads jobs run for minutes to hours: a sensor in reschedule mode waits."""
    dag = dagbag.dags["lifecycle_nightly"]
    wait = dag.get_task("activate.wait_for_vendor_jobs")
    assert wait.mode == "reschedule"
    assert wait.pool == "warehouse"
    assert "activate.sync" in wait.get_flat_relative_ids(upstream=True)
    erasures = dag.get_task("activate.erasures")
    assert erasures.pool == "warehouse"
    # erasures go out after publish and before any sync (membership is dropped first)
    assert "publish" in erasures.get_flat_relative_ids(upstream=True)
    assert "activate.erasures" in dag.get_task("activate.sync").get_flat_relative_ids(upstream=True)
    assert "activate.wait_for_vendor_jobs" in dag.get_task("summary").get_flat_relative_ids(
        upstream=True
    )
