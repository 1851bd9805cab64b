"""Test environment: an Airflow home and data folder per test session, never the user's.

The environment is set at import time, before anything imports Airflow, because Airflow
reads its configuration once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# This checkout's package first, whatever an editable install elsewhere points at.
sys.path.insert(0, str(ROOT / "plugins"))
SESSION_DIR = Path(tempfile.mkdtemp(prefix="lifecycle-tests-"))

from lifecycle.airflow_env import environment  # noqa: E402

ENV = environment(ROOT, airflow_home=SESSION_DIR / "airflow_home", data_dir=SESSION_DIR / "data")
os.environ.update(ENV)


@pytest.fixture(scope="session")
def airflow_db() -> dict[str, str]:
    """A migrated Airflow metadata DB with the warehouse pool (about 15 s, once)."""
    from lifecycle.airflow_env import prepare_home

    prepare_home(ENV)
    return ENV


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """dbt_project/target/manifest.json, which the DAG renders its dbt tasks from."""
    from lifecycle.airflow_env import dbt_parse

    return dbt_parse(ENV)


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    """A fresh warehouse/landing/dlt folder for one test."""
    d = tmp_path / "data"
    monkeypatch.setenv("LIFECYCLE_DATA_DIR", str(d))
    monkeypatch.setenv("DLT_DATA_DIR", str(d / "dlt"))
    for var in ("LIFECYCLE_WAREHOUSE_PATH", "LIFECYCLE_SERVING_PATH", "LIFECYCLE_LANDING_DIR",
                "LIFECYCLE_DLT_DIR"):
        monkeypatch.delenv(var, raising=False)
    return d


@pytest.fixture()
def sandbox(data_dir, monkeypatch):
    """A small simulated world served on a free loopback port, connections pointed at it."""
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare
    from lifecycle.sandbox.world import WorldConfig

    world = prepare(WorldConfig(contacts=300, seed=7), data_dir / "landing")
    with SandboxServer(world) as srv:
        for k, v in connection_env(srv.base_url, data_dir / "landing").items():
            monkeypatch.setenv(k, v)
        yield srv


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env={**os.environ, **ENV}, capture_output=True, text=True, **kw)
