"""
# lifecycle_nightly

**Purpose.** One nightly run of the customer-lifecycle platform: pull CRM, web and email
data, rebuild the lifecycle model in dbt, gate it on quality, publish a read-only serving
snapshot for BI, and sync audiences to ad and email platforms.

**Inputs.** Airflow connections `hubspot_default` (HubSpot CRM v3), `segment_default`
(landing folder of Segment JSONL.gz files), `mailchimp_default` (Mailchimp Marketing v3,
source and destination), `meta_default` (Meta Marketing API), `google_ads_default`
(Google Ads API); audiences and their destinations in `include/audiences.yml`.
`make demo` / `make airflow` point them at the local sandbox.

**Outputs.** DuckDB warehouse `raw_*` (ingested), `staging`/`intermediate`/`marts`/
`audiences` (dbt), `ops.*` (quality results, sync logs); serving snapshot
`data/serving.duckdb` (read-only for BI; `publish_syncs` swaps it again after `activate`
so it holds the night's sync log); audience memberships at each destination;
Great Expectations Data Docs under `data/quality/`; the run report
`data/reports/<night>/summary.html`.

**Predictions.** `predict` fits BG/NBD + Gamma-Gamma, sBG and the learned lead score on
the night's warehouse (`predict.*`, diagnostics in `ops.predict_fits` /
`ops.predict_calibration`); `predict_marts` builds their marts and audiences
(docs/predictive.md). Both run before the gate, which checks them too.
**Retries.** Every task retries twice for what passes (429/5xx the client gave up on,
timeouts, DuckDB locks). What cannot pass fails on the first try, named in the log: a dbt
compile or SQL error (the model and the error), a failing dbt test or quality check, a
vendor's 400/401/403/404 (`lifecycle.failures`).

**Quality gate.** `quality.freshness`, `quality.raw_checks`, `quality.dbt_tests` and
`quality.mart_checks` (suites in `include/expectations/`) must all succeed for `publish`
and `activate` to run; a failed check fails at once, naming the expectation and counts.
Failures alert through `lifecycle.alerts.on_failure` (log, and the
`lifecycle_alerts_webhook` / `lifecycle_alerts_smtp` connections when configured).

**How to re-run.** Clear any task (it is idempotent: ingestion merges on keys, dbt
rebuilds, syncs send only the diff). Backfill a date range with
`airflow backfill create --dag-id lifecycle_nightly --from-date ... --to-date ...`;
each run builds the night of its logical date (`as_of`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, PokeReturnValue, TriggerRule, dag, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior
from cosmos.operators.local import DbtTestLocalOperator

from lifecycle.alerts import on_failure
from lifecycle.config import settings

CFG = settings()
WAREHOUSE_POOL = "warehouse"
RAW = Asset("lifecycle://warehouse/raw")
MARTS = Asset("lifecycle://warehouse/marts")
SERVING = Asset("lifecycle://serving")
DBT_ENV = {
    "LIFECYCLE_WAREHOUSE_PATH": str(CFG.warehouse_path),
    "LIFECYCLE_DBT_TARGET": "duckdb",
}
DBT_VARS = {"as_of": "{{ ds }}"}
#: How often the sensor asks vendors about running jobs (Google Ads Customer Match jobs
#: take minutes to hours) and how long it waits in all; between pokes no worker is held.
VENDOR_JOB_POKE_S = float(os.environ.get("LIFECYCLE_VENDOR_JOB_POKE_S", "300"))
VENDOR_JOB_TIMEOUT_S = float(os.environ.get("LIFECYCLE_VENDOR_JOB_TIMEOUT_S", str(12 * 3600)))
#: Cosmos callback (an import path, resolved when the task runs, not at parse).
DBT_FAIL_FAST = "lifecycle.failures.dbt_fail_fast"
#: Every Cosmos dbt task: one writer at a time, the night's vars, and a compile or SQL
#: error failing the task on its first try (retries are for locks and the like).
DBT_OPERATOR_ARGS = {
    "pool": WAREHOUSE_POOL,
    "vars": DBT_VARS,
    "install_deps": False,
    "callback": DBT_FAIL_FAST,
}
PROFILE = ProfileConfig(
    profile_name="lifecycle",
    target_name="duckdb",
    profiles_yml_filepath=CFG.dbt_project_dir / "profiles.yml",
)
EXECUTION = ExecutionConfig(
    dbt_project_path=CFG.dbt_project_dir,
    invocation_mode=InvocationMode.DBT_RUNNER,
)


@dag(
    dag_id="lifecycle_nightly",
    schedule="0 2 * * *",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["lifecycle", "nightly", "dbt", "activation"],
    default_args={
        "owner": "data-platform",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        "on_failure_callback": on_failure,
    },
)
def lifecycle_nightly():
    @task_group(
        group_id="ingest",
        tooltip="CRM and email (dlt), web files (DuckDB) into raw_*; erased people purged",
    )
    def ingest():
        @task(pool=WAREHOUSE_POOL, outlets=[RAW])
        def hubspot() -> dict:
            from lifecycle.failures import run_failing_fast  # noqa: PLC0415
            from lifecycle.tasks import ingest as run  # noqa: PLC0415

            return run_failing_fast(run, "hubspot")

        @task(pool=WAREHOUSE_POOL, outlets=[RAW])
        def segment() -> dict:
            from lifecycle.failures import run_failing_fast  # noqa: PLC0415
            from lifecycle.tasks import ingest as run  # noqa: PLC0415

            return run_failing_fast(run, "segment")

        @task(pool=WAREHOUSE_POOL, outlets=[RAW])
        def mailchimp() -> dict:
            from lifecycle.failures import run_failing_fast  # noqa: PLC0415
            from lifecycle.tasks import ingest as run  # noqa: PLC0415

            return run_failing_fast(run, "mailchimp")

        loaded = {"hubspot": hubspot(), "segment": segment(), "mailchimp": mailchimp()}

        @task(pool=WAREHOUSE_POOL, outlets=[RAW])
        def erasures() -> dict:
            """Purge erased people (ops.erasures) from every raw table before dbt."""
            from lifecycle.failures import run_failing_fast  # noqa: PLC0415
            from lifecycle.tasks import erase  # noqa: PLC0415

            return run_failing_fast(erase)

        erased = erasures()
        list(loaded.values()) >> erased
        # the summary lists it beside the sources; transform waits for it
        return {**loaded, "erasures": erased}

    loaded = ingest()

    transform = DbtTaskGroup(
        group_id="transform",
        project_config=ProjectConfig(
            manifest_path=CFG.dbt_target_dir / "manifest.json",
            project_name="lifecycle",
            env_vars=DBT_ENV,
        ),
        profile_config=PROFILE,
        execution_config=EXECUTION,
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.NONE,
            exclude=["tag:predict"],  # built by predict_marts, after the predict task
        ),
        operator_args=DBT_OPERATOR_ARGS,
    )

    # Predictive models (issue 12): fit on the night's marts, then their dbt marts and
    # audiences. Before the quality gate, so dbt_tests and mart_checks judge them and
    # publish/activate ship them with the rest of the night.
    @task(pool=WAREHOUSE_POOL)
    def predict(run_id: str | None = None, ds: str | None = None) -> dict:
        from lifecycle.tasks import predict as run  # noqa: PLC0415

        return run(night=ds, run_id=run_id)

    predict_marts = DbtTaskGroup(
        group_id="predict_marts",
        project_config=ProjectConfig(
            manifest_path=CFG.dbt_target_dir / "manifest.json",
            project_name="lifecycle",
            env_vars=DBT_ENV,
        ),
        profile_config=PROFILE,
        execution_config=EXECUTION,
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.NONE,
            select=["tag:predict"],
        ),
        operator_args=DBT_OPERATOR_ARGS,
    )

    @task_group(
        group_id="quality",
        tooltip="freshness, GE suites on raw and marts, dbt tests: any 'fail' stops the night",
    )
    def quality():
        def gate(kind: str, run_id: str, ds: str) -> dict:
            from lifecycle.quality.gate import QualityGateFailed  # noqa: PLC0415
            from lifecycle.tasks import quality_check  # noqa: PLC0415

            try:
                return quality_check(kind, run_id, ds)
            except QualityGateFailed as exc:
                # the data will not change on retry: fail now, publish/activate never run
                raise AirflowFailException(str(exc)) from exc

        @task(pool=WAREHOUSE_POOL)
        def freshness(run_id: str | None = None, ds: str | None = None) -> dict:
            return gate("freshness", run_id, ds)

        @task(pool=WAREHOUSE_POOL)
        def raw_checks(run_id: str | None = None, ds: str | None = None) -> dict:
            return gate("raw", run_id, ds)

        dbt_tests = DbtTestLocalOperator(
            task_id="dbt_tests",
            project_dir=str(CFG.dbt_project_dir),
            profile_config=PROFILE,
            invocation_mode=InvocationMode.DBT_RUNNER,
            env=DBT_ENV,
            vars=DBT_VARS,
            install_deps=False,
            pool=WAREHOUSE_POOL,
            # a failing dbt test fails at once: the data will not change on retry
            callback=DBT_FAIL_FAST,
        )

        @task(pool=WAREHOUSE_POOL)
        def mart_checks(run_id: str | None = None, ds: str | None = None) -> dict:
            return gate("marts", run_id, ds)

        # independent checks (the pool runs them one at a time): each reports even when
        # another failed; publish needs all of them to succeed
        return [freshness(), raw_checks(), dbt_tests, mart_checks()]

    @task(pool=WAREHOUSE_POOL, outlets=[MARTS, SERVING], trigger_rule=TriggerRule.ALL_SUCCESS)
    def publish(run_id: str | None = None, ds: str | None = None) -> dict:
        from lifecycle.tasks import publish as run  # noqa: PLC0415

        return run(night=ds, run_id=run_id)

    @task_group(
        group_id="activate",
        tooltip="erasures to every destination, then one mapped sync per audience x "
        "destination, then wait (rescheduling, no worker held) for vendor jobs",
    )
    def activate(after):
        @task(pool=WAREHOUSE_POOL)
        def erasures() -> dict:
            from lifecycle.tasks import propagate_erasures  # noqa: PLC0415

            return propagate_erasures()

        @task
        def plan_syncs() -> list[dict]:
            from lifecycle.tasks import audience_syncs  # noqa: PLC0415

            return audience_syncs()

        @task(
            pool=WAREHOUSE_POOL,
            map_index_template="{{ task.op_kwargs['spec']['audience'] }} -> "
            "{{ task.op_kwargs['spec']['destination'] }}",
        )
        def sync(spec: dict) -> dict:
            from lifecycle.tasks import sync as run  # noqa: PLC0415

            return run(spec["audience"], spec["destination"])

        @task.sensor(
            pool=WAREHOUSE_POOL,
            mode="reschedule",
            poke_interval=VENDOR_JOB_POKE_S,
            timeout=VENDOR_JOB_TIMEOUT_S,
        )
        def wait_for_vendor_jobs(syncs: list[dict]) -> PokeReturnValue:
            from lifecycle.tasks import finish_vendor_jobs  # noqa: PLC0415

            state = finish_vendor_jobs(list(syncs))
            return PokeReturnValue(is_done=state["running"] == 0, xcom_value=state["syncs"])

        erased, planned = erasures(), plan_syncs()
        after >> erased >> planned
        return wait_for_vendor_jobs(sync.expand(spec=planned))

    @task
    def summary(
        loaded: dict, syncs: list[dict], ds: str | None = None, run_id: str | None = None
    ) -> dict:
        from lifecycle.tasks import night_summary  # noqa: PLC0415

        return night_summary(ds, loaded, list(syncs), run_id=run_id)

    @task(pool=WAREHOUSE_POOL, outlets=[SERVING], trigger_rule=TriggerRule.ALL_DONE)
    def publish_syncs(run_id: str | None = None, ds: str | None = None) -> dict:
        """Swap the snapshot again with the night's sync log (failed syncs included)."""
        from lifecycle.tasks import publish_syncs as run  # noqa: PLC0415

        result = run(night=ds, run_id=run_id)
        if not result["published"]:
            raise AirflowSkipException(result["reason"])
        return result

    published = publish()
    synced = activate(published)
    loaded_deps = list(loaded.values())
    checks = quality()
    loaded_deps >> transform >> predict() >> predict_marts >> checks
    checks >> published
    [published, synced] >> publish_syncs()
    summary(loaded, synced)


lifecycle_nightly()
