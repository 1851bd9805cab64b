"""DuckDB's memory limit and threads: one home (the dbt profile), the same in dbt and Python.

The oracle is dbt itself: ``dbt show`` asks DuckDB, inside dbt's own connection, what its
settings are; the Python tasks' ``warehouse.connect()`` must report the same values, with
the profile's defaults and with the environment overriding them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifecycle import warehouse

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
SQL = (
    "select current_setting('memory_limit') as memory_limit, "
    "current_setting('threads')::varchar as threads, "
    "current_setting('TimeZone') as tz, current_setting('temp_directory') as temp_dir"
)


def dbt_settings(workdir: Path, env: dict[str, str]) -> dict:
    project = str(ROOT / "dbt_project")
    proc = subprocess.run(
        [DBT, "show", "--inline", SQL, "--output", "json", "--log-format", "json"]
        + ["--project-dir", project, "--profiles-dir", project]
        + ["--target-path", str(workdir / "target"), "--log-path", str(workdir / "logs")],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for line in proc.stdout.splitlines():
        data = json.loads(line).get("data", {})
        if "preview" in data:
            preview = data["preview"]
            return (json.loads(preview) if isinstance(preview, str) else preview)[0]
    raise AssertionError(f"no preview in dbt show's output:\n{proc.stdout[-3000:]}")


def python_settings() -> dict:
    con = warehouse.connect()
    try:
        row = con.execute(SQL).fetchone()
    finally:
        con.close()
    return dict(zip(("memory_limit", "threads", "tz", "temp_dir"), row, strict=True))


@pytest.mark.parametrize(
    "override",
    [{}, {"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "1GiB", "LIFECYCLE_DUCKDB_THREADS": "1"}],
    ids=["profile defaults", "environment overrides"],
)
def test_dbt_and_python_connections_run_with_the_same_duckdb_settings(
    data_dir, monkeypatch, tmp_path, override
):
    for var, value in override.items():
        monkeypatch.setenv(var, value)
    path = data_dir / "warehouse.duckdb"
    monkeypatch.setenv("LIFECYCLE_WAREHOUSE_PATH", str(path))
    ours = python_settings()  # creates the file dbt then opens
    theirs = dbt_settings(tmp_path, {"LIFECYCLE_WAREHOUSE_PATH": str(path)})
    assert ours == theirs
    assert ours["tz"] == "UTC"
    # spilling stays on, next to the warehouse (DuckDB's default for a database file)
    assert ours["temp_dir"] == f"{path}.tmp"
    if override:
        assert ours["memory_limit"] == "1.0 GiB" and ours["threads"] == "1"
    else:
        # a limit is set: DuckDB's own default would be 80% of this machine's memory
        assert ours["memory_limit"] == "4.0 GiB"


def dlt_settings() -> dict:
    """The settings inside the connection dlt's sources load through."""
    from lifecycle.sources.common import pipeline  # noqa: PLC0415 - dlt is heavy

    with pipeline("hubspot").sql_client() as client:
        row = client.execute_sql(SQL)[0]
    return dict(zip(("memory_limit", "threads", "tz", "temp_dir"), row, strict=True))


@pytest.mark.parametrize(
    "override",
    [{}, {"LIFECYCLE_DUCKDB_MEMORY_LIMIT": "1GiB", "LIFECYCLE_DUCKDB_THREADS": "1"}],
    ids=["profile defaults", "environment overrides"],
)
def test_dlt_loads_run_with_the_same_duckdb_settings(data_dir, monkeypatch, tmp_path, override):
    for var, value in override.items():
        monkeypatch.setenv(var, value)
    path = data_dir / "warehouse.duckdb"
    monkeypatch.setenv("LIFECYCLE_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("LIFECYCLE_DLT_DIR", str(tmp_path / "dlt"))
    ours = python_settings()
    theirs = dlt_settings()
    # the temp directory is the warehouse's in both (DuckDB's default for the file)
    assert theirs == ours
    assert theirs["memory_limit"] == ("1.0 GiB" if override else "4.0 GiB")
