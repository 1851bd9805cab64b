"""The embedded Airflow: environment for an Airflow home inside the project.

SQLite metadata, LocalExecutor, examples off, small parallelism for a 2-core laptop,
Cosmos cache and dlt state inside the project, telemetry off. ``make demo``,
``make airflow`` and the tests all take their environment from :func:`environment`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lifecycle.config import PROJECT_ROOT

DAG_ID = "lifecycle_nightly"


def environment(
    root: Path = PROJECT_ROOT, airflow_home: Path | None = None, data_dir: Path | None = None
) -> dict[str, str]:
    home = airflow_home or root / "airflow_home"
    data = data_dir or root / "data"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "AIRFLOW__API__PORT": os.environ.get("AIRFLOW__API__PORT", "8080"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW__COSMOS__CACHE_DIR": str(data / "cosmos_cache"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__PROPAGATE_LOGS": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_ANALYTICS": "false",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        # dlt would otherwise look up every config key as an Airflow Variable (seconds).
        "PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false",
        "DLT_DATA_DIR": str(data / "dlt"),
        "LIFECYCLE_HOME": str(root),
        # the embedded sandbox's Customer Match jobs take a minute: ask every 10 s
        "LIFECYCLE_VENDOR_JOB_POKE_S": os.environ.get("LIFECYCLE_VENDOR_JOB_POKE_S", "10"),
        "LIFECYCLE_DATA_DIR": str(data),
        "DBT_PROFILES_DIR": str(root / "dbt_project"),
        # `airflow standalone` starts its components as `airflow ...` from PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(root / "plugins"), os.environ.get("PYTHONPATH")])
        ),
    }


def bin_path(name: str) -> str:
    """An executable from this interpreter's environment (the project's venv)."""
    return str(Path(sys.executable).parent / name)


def run(args: list[str], env: dict[str, str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, env={**os.environ, **env}, check=True, **kw)


def prepare_home(env: dict[str, str], quiet: bool = True) -> None:
    """Migrate the metadata DB (idempotent) and create the one-slot warehouse pool."""
    out = subprocess.DEVNULL if quiet else None
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    run([bin_path("airflow"), "db", "migrate"], env, stdout=out, stderr=out)
    run(
        [
            bin_path("airflow"),
            "pools",
            "set",
            "warehouse",
            "1",
            "DuckDB has one writer: every warehouse writer runs in this pool",
        ],
        env,
        stdout=out,
        stderr=out,
    )


def dbt_parse(env: dict[str, str], quiet: bool = True) -> Path:
    """Write dbt_project/target/manifest.json (Cosmos renders the DAG from it)."""
    project = Path(env["LIFECYCLE_HOME"]) / "dbt_project"
    out = subprocess.DEVNULL if quiet else None
    run(
        [bin_path("dbt"), "parse", "--project-dir", str(project), "--profiles-dir", str(project)],
        env,
        stdout=out,
        stderr=out,
    )
    return project / "target" / "manifest.json"
