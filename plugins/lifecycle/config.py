"""Where things are and how the project is configured, from the environment.

Every path can be overridden with an environment variable so the same code runs in the
embedded default (everything under the project's ``data/``), in tests (a temporary
folder) and in a team deployment (mounted volumes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("LIFECYCLE_HOME", Path(__file__).resolve().parents[2]))


def _path(var: str, default: Path) -> Path:
    return Path(os.environ.get(var, default)).resolve()


@dataclass(frozen=True)
class Settings:
    """Resolved paths and knobs for one process."""

    data_dir: Path
    warehouse_path: Path
    serving_path: Path
    landing_dir: Path
    dlt_dir: Path
    dbt_project_dir: Path
    include_dir: Path

    @property
    def dbt_target_dir(self) -> Path:
        return self.dbt_project_dir / "target"


def duckdb_settings(s: Settings | None = None) -> dict[str, str]:
    """DuckDB's settings (TimeZone, memory_limit, threads) as the dbt profile
    sets them: ``dbt_project/profiles.yml`` is their one home, rendered here with the
    same ``env_var`` lookups dbt makes, so the Python tasks and dbt run on one budget."""
    import jinja2  # noqa: PLC0415
    import yaml  # noqa: PLC0415

    s = s or settings()
    env = {**os.environ, "LIFECYCLE_WAREHOUSE_PATH": str(s.warehouse_path)}
    missing = object()

    def env_var(name: str, default=missing) -> str:
        if name in env:
            return env[name]
        if default is missing:
            raise KeyError(f"environment variable {name} is required by profiles.yml")
        return default

    path = s.dbt_project_dir / "profiles.yml"
    if not path.exists():  # a dbt project without its own profile: the shipped one
        path = PROJECT_ROOT / "dbt_project" / "profiles.yml"
    profile = yaml.safe_load(path.read_text())
    raw = profile["lifecycle"]["outputs"]["duckdb"].get("settings") or {}
    jinja = jinja2.Environment()  # noqa: S701 - renders YAML values, never HTML
    return {k: jinja.from_string(str(v)).render(env_var=env_var) for k, v in raw.items()}


def settings() -> Settings:
    data = _path("LIFECYCLE_DATA_DIR", PROJECT_ROOT / "data")
    return Settings(
        data_dir=data,
        warehouse_path=_path("LIFECYCLE_WAREHOUSE_PATH", data / "warehouse.duckdb"),
        serving_path=_path("LIFECYCLE_SERVING_PATH", data / "serving.duckdb"),
        landing_dir=_path("LIFECYCLE_LANDING_DIR", data / "landing"),
        dlt_dir=_path("LIFECYCLE_DLT_DIR", data / "dlt"),
        dbt_project_dir=_path("LIFECYCLE_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"),
        include_dir=_path("LIFECYCLE_INCLUDE_DIR", PROJECT_ROOT / "include"),
    )
