"""docker-compose.yml checked against the project, without a Docker engine.

The compose file is hand-written; each check compares it with what the project itself
says: the Dockerfile (image, where it copies plugins and DAGs), pyproject (the Airflow
pin), the embedded default's environment, the sandbox's connections, the DAG's pool,
Airflow's and the lifecycle CLI's own argument parsers (commands), and the plugin.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from lifecycle.airflow_env import environment
from lifecycle.sandbox.server import connection_env

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
}
#: Keys of the embedded default that are paths or host settings of one machine.
LOCAL_ONLY = {
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK",
    "AIRFLOW__API__PORT",
    "AIRFLOW__LOGGING__LOGGING_LEVEL",
    "AIRFLOW__COSMOS__CACHE_DIR",
    "DLT_DATA_DIR",
    "LIFECYCLE_HOME",
    "LIFECYCLE_DATA_DIR",
    "DBT_PROFILES_DIR",
    "PATH",
    "PYTHONPATH",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> dict:
    """FROM image, COPY destinations by source, ENV values."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out = {"from": None, "copy": {}, "env": {}}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "FROM":
            out["from"] = words[1]
        elif words[0] == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            for src in args[:-1]:
                out["copy"][src] = args[-1]
        elif words[0] == "ENV":
            out["env"].update(dict(w.split("=", 1) for w in words[1:]))
    return out


def env_of(compose: dict, service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose["services"][service].get("environment") or {}).items()}


def data_dir(compose: dict) -> str:
    return env_of(compose, "airflow-apiserver")["LIFECYCLE_DATA_DIR"]


def test_services_are_the_airflow_3_components_postgres_and_the_sandbox(compose):
    assert set(compose["services"]) == {"postgres", "sandbox", "airflow-init", *AIRFLOW_SERVICES}
    for name, service in compose["services"].items():
        for dep in service.get("depends_on") or {}:
            assert dep in compose["services"], f"{name} depends on unknown service {dep}"


def test_every_project_service_runs_the_image_the_dockerfile_builds(compose, dockerfile):
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    airflow_pin = next(p for p in pins if p.startswith("apache-airflow==")).split("==")[1]
    assert dockerfile["from"] == f"apache/airflow:{airflow_pin}-python3.11"
    images = set()
    for name in ("sandbox", "airflow-init", *AIRFLOW_SERVICES):
        service = compose["services"][name]
        assert service["build"] == ".", name
        images.add(service["image"])
    assert len(images) == 1
    assert compose["services"]["postgres"]["image"].startswith("postgres:")


def test_commands_parse_with_airflows_and_the_lifecycle_cli(compose):
    from airflow.cli.cli_parser import get_parser

    from lifecycle.cli import build_parser

    airflow = get_parser()
    for name, command in AIRFLOW_SERVICES.items():
        got = compose["services"][name]["command"]
        got = shlex.split(got) if isinstance(got, str) else got
        assert got == command, name
        airflow.parse_args(got)  # exits on an unknown command
    init = compose["services"]["airflow-init"]["command"]
    script = shlex.split(init)
    assert script[:2] == ["bash", "-c"]
    steps = [shlex.split(s) for s in script[2].split("&&")]
    assert [s[0] for s in steps] == ["airflow", "airflow"]
    for step in steps:
        airflow.parse_args(step[1:])
    pools = next(s for s in steps if s[1:3] == ["pools", "set"])
    dag = (ROOT / "dags" / "lifecycle_nightly.py").read_text()
    pool = re.search(r'WAREHOUSE_POOL = "(\w+)"', dag).group(1)
    assert (pools[3], pools[4]) == (pool, "1")  # DuckDB has one writer

    sandbox = compose["services"]["sandbox"]["command"]
    assert sandbox[:3] == ["python", "-m", "lifecycle.cli"]
    args = build_parser().parse_args(sandbox[3:])
    assert args.func.__name__ == "cmd_sandbox_serve"


def test_the_connections_are_the_sandboxs_own_at_its_service_address(compose):
    sandbox = build_args(compose)
    want = connection_env(f"http://sandbox:{sandbox.port}", Path(sandbox.landing))
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        got = {k: v for k, v in env_of(compose, name).items() if k.startswith("AIRFLOW_CONN_")}
        assert {k: json.loads(v) for k, v in got.items()} == {
            k: json.loads(v) for k, v in want.items()
        }, name
    ports = compose["services"]["sandbox"]["ports"]
    assert f"{sandbox.port}:{sandbox.port}" in ports


def build_args(compose: dict):
    from lifecycle.cli import build_parser

    return build_parser().parse_args(compose["services"]["sandbox"]["command"][3:])


def test_environment_is_the_embedded_defaults(compose, dockerfile):
    local = environment()
    shared = {k: v for k, v in local.items() if k not in LOCAL_ONLY}
    for name in ("airflow-init", *AIRFLOW_SERVICES):
        env = env_of(compose, name)
        assert {k: env.get(k) for k in shared} == shared, name
        # every component signs and checks task tokens with one secret
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith(
            "http://airflow-apiserver:8080/"
        )
        assert env["LIFECYCLE_DATA_DIR"] == dockerfile["env"]["LIFECYCLE_DATA_DIR"]
        assert env["DLT_DATA_DIR"].startswith(env["LIFECYCLE_DATA_DIR"] + "/")
        assert env["AIRFLOW__COSMOS__CACHE_DIR"].startswith(env["LIFECYCLE_DATA_DIR"] + "/")
    pg = compose["services"]["postgres"]["environment"]
    conn = env_of(compose, "airflow-scheduler")["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn.endswith(
        f"{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres/{pg['POSTGRES_DB']}"
    )
    assert "8080:8080" in compose["services"]["airflow-apiserver"]["ports"]


def test_the_plugin_and_the_dags_are_where_the_image_puts_them(compose, dockerfile):
    plugins = env_of(compose, "airflow-apiserver")["AIRFLOW__CORE__PLUGINS_FOLDER"]
    assert dockerfile["copy"]["plugins"] == plugins
    # the file Airflow's plugin scan imports, and the page's app, ship in that folder
    assert (ROOT / "plugins" / "lifecycle_ui.py").is_file()
    assert (ROOT / "plugins" / "lifecycle" / "ui" / "static" / "index.html").is_file()
    assert "lifecycle/" in (ROOT / "plugins" / ".airflowignore").read_text().split()
    # the image's default DAGs folder: not overridden elsewhere
    assert dockerfile["copy"]["dags"] == "/opt/airflow/dags"
    assert "AIRFLOW__CORE__DAGS_FOLDER" not in env_of(compose, "airflow-dag-processor")
    assert dockerfile["env"]["LIFECYCLE_HOME"] == str(Path(plugins).parent)


def test_every_component_mounts_the_shared_data_volume_at_the_data_dir(compose):
    """The api-server reads the serving snapshot that the scheduler's tasks publish."""
    target = data_dir(compose)
    volumes = compose.get("volumes") or {}
    for name in ("sandbox", "airflow-init", *AIRFLOW_SERVICES):
        mounts = compose["services"][name].get("volumes") or []
        data = [m for m in mounts if m.split(":")[1] == target]
        assert len(data) == 1, (name, mounts)
        source = data[0].split(":")[0]
        assert source in volumes, f"{name}: {source} is not a named volume"
    assert {
        m.split(":")[0]
        for n in ("sandbox", *AIRFLOW_SERVICES)
        for m in compose["services"][n]["volumes"]
    } == {"lifecycle-data"}
    assert env_of(compose, "sandbox")["LIFECYCLE_DATA_DIR"] == target
    assert build_args(compose).landing.startswith(target + "/")
