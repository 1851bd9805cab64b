"""Where the predictive models sit in the nightly DAG (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dag(dbt_manifest):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["lifecycle_nightly"]


def test_predict_runs_after_transform_and_before_the_gate(dag):
    predict = dag.get_task("predict")
    upstream = predict.get_flat_relative_ids(upstream=True)
    transform_models = {t.task_id for t in dag.tasks if t.task_id.startswith("transform.")}
    assert transform_models and transform_models <= upstream
    marts = [t for t in dag.tasks if t.task_id.startswith("predict_marts.")]
    names = {t.task_id.split(".")[1] for t in marts}
    assert {"dim_customer_predictions_run", "aud_at_risk_high_value_run"} <= names
    for t in marts:
        assert "predict" in t.get_flat_relative_ids(upstream=True)
    for check in ("quality.dbt_tests", "quality.mart_checks"):
        assert {"predict", *(t.task_id for t in marts)} <= dag.get_task(
            check
        ).get_flat_relative_ids(upstream=True)


def test_predict_models_are_built_once_and_write_through_the_pool(dag):
    transform = {
        t.task_id.split(".", 1)[1] for t in dag.tasks if t.task_id.startswith("transform.")
    }
    assert not any("predictions" in t or "aud_likely_to_buy_soon" in t for t in transform)
    writers = [dag.get_task("predict")] + [
        t for t in dag.tasks if t.task_id.startswith("predict_marts.")
    ]
    assert {t.pool for t in writers} == {"warehouse"}
    assert all(t.retries >= 2 for t in writers)
