"""Expectation suites kept as YAML files under ``include/expectations/``.

A suite file names its layer (``raw`` or ``marts``: which quality task runs it), its
severity, and batches. A batch is either a table / SQL query read from DuckDB with a list
of Great Expectations expectations, or a *derived* batch the runner computes from the
warehouse and the history in ``ops.quality_metrics`` (``daily_volume``,
``row_count_change``, ``stage_shift``, ``audience_sizes``, ``audience_consent``).

This module only reads and resolves the files (no Great Expectations import), so it is
cheap to load and to unit-test.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import yaml

DERIVED_KINDS = (
    "daily_volume",
    "row_count_change",
    "stage_shift",
    "audience_sizes",
    "audience_consent",
)
LAYERS = ("raw", "marts")


class SuiteError(ValueError):
    """A suite file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict
    severity: str


@dataclass(frozen=True)
class Batch:
    name: str
    table: str | None = None
    sql: str | None = None
    derived: str | None = None
    params: dict = field(default_factory=dict)
    expectations: tuple[Expectation, ...] = ()
    #: a table batch's timestamp column: only rows from the suite's ``partition_days``
    #: before the night on (and rows where it is null) are read, not the whole history
    partition: str | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    layer: str
    severity: str
    description: str
    batches: tuple[Batch, ...]
    future_slack_hours: float = 24.0
    path: Path | None = None
    #: how far back a partitioned batch reads: the night's day plus late arrivals; days,
    #: or the name of the dbt var that holds them (``partition_days: {dbt_var: name}``)
    partition_days: float | str | None = None


def _expectation(item, severity: str, where: str) -> Expectation:
    if not isinstance(item, dict) or len(item) != 1:
        raise SuiteError(f"{where}: each expectation is one mapping `<type>: {{kwargs}}`")
    ((etype, kwargs),) = item.items()
    if not etype.startswith("expect_"):
        raise SuiteError(f"{where}: {etype!r} is not a Great Expectations expectation type")
    kwargs = dict(kwargs or {})
    sev = kwargs.pop("severity", severity)
    if sev not in ("warn", "fail"):
        raise SuiteError(f"{where}: severity {sev!r}, expected 'warn' or 'fail'")
    return Expectation(etype, kwargs, sev)


def load_suite(path: Path) -> Suite:
    """Parse and validate one suite file; errors name the file and the entry."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    where = Path(path).name
    for key in ("suite", "layer", "severity", "batches"):
        if key not in data:
            raise SuiteError(f"{where}: missing required key {key!r}")
    if data["layer"] not in LAYERS:
        raise SuiteError(f"{where}: layer {data['layer']!r}, expected one of {LAYERS}")
    if data["severity"] not in ("warn", "fail"):
        raise SuiteError(f"{where}: severity {data['severity']!r}, expected 'warn' or 'fail'")
    batches = []
    for i, b in enumerate(data["batches"]):
        bwhere = f"{where} batch {b.get('name', i)!r}"
        if "name" not in b:
            raise SuiteError(f"{where}: batch #{i} has no name")
        derived = [k for k in DERIVED_KINDS if k in b]
        sources = [k for k in ("table", "sql") if k in b] + derived
        if len(sources) != 1:
            raise SuiteError(
                f"{bwhere}: give exactly one of table, sql or {', '.join(DERIVED_KINDS)}"
            )
        exps = tuple(_expectation(e, data["severity"], bwhere) for e in b.get("expectations") or [])
        if "partition" in b and "table" not in b:
            raise SuiteError(f"{bwhere}: partition applies to table batches only")
        if "partition" in b and "partition_days" not in data:
            raise SuiteError(f"{bwhere}: partition needs the suite's partition_days")
        if not derived and not exps:
            raise SuiteError(f"{bwhere}: no expectations")
        batches.append(
            Batch(
                name=b["name"],
                table=b.get("table"),
                sql=b.get("sql"),
                derived=derived[0] if derived else None,
                params=dict(b[derived[0]] or {}) if derived else {},
                expectations=exps,
                partition=b.get("partition"),
            )
        )
    return Suite(
        name=data["suite"],
        layer=data["layer"],
        severity=data["severity"],
        description=data.get("description", ""),
        batches=tuple(batches),
        future_slack_hours=float(data.get("future_slack_hours", 24)),
        path=Path(path),
        partition_days=_partition_days(data.get("partition_days"), where),
    )


def _partition_days(value, where: str) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        if set(value) != {"dbt_var"}:
            raise SuiteError(f"{where}: partition_days is a number or {{dbt_var: <name>}}")
        return str(value["dbt_var"])
    return float(value)


def dbt_var(dbt_project_dir: Path, name: str):
    """A var of ``dbt_project.yml``: the models' windows are the suites' windows too."""
    with open(dbt_project_dir / "dbt_project.yml") as fh:
        variables = (yaml.safe_load(fh) or {}).get("vars") or {}
    if name not in variables:
        raise SuiteError(f"dbt var {name!r} is not in {dbt_project_dir / 'dbt_project.yml'}")
    return variables[name]


def load_suites(directory: Path, layer: str | None = None) -> list[Suite]:
    suites = [load_suite(p) for p in sorted(Path(directory).glob("*.y*ml"))]
    if not suites:
        raise SuiteError(f"no expectation suites in {directory}")
    return [s for s in suites if layer is None or s.layer == layer]


def lifecycle_stages(dbt_project_dir: Path) -> list[str]:
    """Stage names from the dbt seed (marketing ops edit it; the suites follow)."""
    with open(dbt_project_dir / "seeds" / "lifecycle_stages.csv", newline="") as fh:
        return [row["stage"] for row in csv.DictReader(fh)]


def placeholders(as_of: datetime, suite: Suite, dbt_project_dir: Path) -> dict:
    """Values for the ``"{name}"`` placeholders allowed in expectation kwargs and SQL."""
    values = {
        "as_of": as_of,
        "night_start": as_of - timedelta(days=1),
        "future_cutoff": as_of + timedelta(hours=suite.future_slack_hours),
        "lifecycle_stages": lifecycle_stages(dbt_project_dir),
    }
    days = suite.partition_days
    if isinstance(days, str):
        days = float(dbt_var(dbt_project_dir, days))
    if days is not None:
        values["partition_start"] = as_of - timedelta(days=days)
    return values


def partition_sql(batch: Batch, values: dict) -> str:
    """What a table batch reads: the whole table, or its partition (see ``Batch``)."""
    if not batch.partition:
        return f"select * from {batch.table}"
    col = f'"{batch.partition}"'
    return sql_literals(
        f"select * from {batch.table} where {col} >= {{partition_start}} or {col} is null",
        values,
    )


def resolve(value, values: dict):
    """Replace a whole-string placeholder (``"{as_of}"``) by its value, recursively."""
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        key = value[1:-1]
        if key not in values:
            raise SuiteError(f"unknown placeholder {value!r}; known: {', '.join(values)}")
        return values[key]
    if isinstance(value, dict):
        return {k: resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, values) for v in value]
    return value


def sql_literals(sql: str, values: dict) -> str:
    """Replace ``{as_of}``-style placeholders in SQL by timestamp literals."""
    for key, v in values.items():
        if isinstance(v, datetime):
            sql = sql.replace("{" + key + "}", f"timestamp '{v:%Y-%m-%d %H:%M:%S}'")
    return sql
