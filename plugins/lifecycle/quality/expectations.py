"""Run the expectation suites of one layer with Great Expectations on pandas DataFrames.

The runner: each batch is read from DuckDB into pandas (GE's SQL route does not work on
DuckDB; event tables only their night's partition) and validated. Derived batches
(volume, night-over-night drift, consent) come from :mod:`lifecycle.quality.derived`,
the history they compare with from :mod:`lifecycle.quality.history`.
Results become :class:`~lifecycle.quality.gate.CheckResult` rows; GE Data Docs (HTML)
are rebuilt under ``<data>/quality/gx/uncommitted/data_docs/local_site/``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from lifecycle.config import settings
from lifecycle.quality import derived, history
from lifecycle.quality.gate import CheckResult
from lifecycle.quality.suites import (
    Batch,
    Expectation,
    Suite,
    load_suites,
    partition_sql,
    placeholders,
    resolve,
    sql_literals,
)

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A batch ready for GE: its DataFrame, expectations and context for the message."""

    suite: Suite
    batch: Batch
    target: str
    frame: pd.DataFrame | None
    expectations: list[Expectation]
    context: dict = field(default_factory=dict)
    error: str | None = None


def docs_index(data_dir: Path | None = None) -> Path:
    root = (data_dir or settings().data_dir) / "quality"
    return root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _naive_utc(frame: pd.DataFrame) -> pd.DataFrame:
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.DatetimeTZDtype):
            frame[col] = frame[col].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def prepare(con, suite: Suite, as_of: datetime, night: str, dbt_dir: Path):
    """Read or compute every batch of ``suite``; return them and the history to record."""
    values = placeholders(as_of, suite, dbt_dir)
    prepared, later = [], []
    for b in suite.batches:
        target = b.table or b.params.get("table") or derived.TARGETS.get(b.derived, suite.name)
        exps = [Expectation(e.type, resolve(e.kwargs, values), e.severity) for e in b.expectations]
        try:
            ctx: dict = {}
            if b.table:
                frame = con.execute(partition_sql(b, values)).df()
                if b.partition:
                    start = values["partition_start"]
                    ctx["partition"] = f"{b.partition} >= {start:%Y-%m-%d %H:%M}"
            elif b.sql:
                frame = con.execute(sql_literals(b.sql, values)).df()
            else:
                frame, exps, ctx, rem = derived.compute(
                    con, b.derived, b.params, as_of, night, suite.severity
                )
                if rem:
                    later.append(rem)
            prepared.append(Prepared(suite, b, target, _naive_utc(frame), exps, ctx))
        except duckdb.Error as exc:
            # a missing table or column (schema change) fails the batch, named
            msg = str(exc).splitlines()[0]
            prepared.append(Prepared(suite, b, target, None, exps, {}, error=msg))
    return prepared, later


def _label(e: Expectation) -> str:
    arg = e.kwargs.get("column") or ",".join(e.kwargs.get("column_list", [])) or ""
    return f"{e.type}({arg})" if arg else e.type


def _observed(result: dict, kwargs: dict) -> dict:
    out = {}
    for key in ("observed_value", "unexpected_count", "element_count"):
        if result.get(key) is not None:
            out[key] = result[key]
    if result.get("partial_unexpected_list"):
        out["examples"] = [str(v) for v in result["partial_unexpected_list"][:5]]
    if isinstance(out.get("observed_value"), list) and "column_set" in kwargs:
        missing = sorted(set(kwargs["column_set"]) - set(out["observed_value"]))
        out = {"missing_columns": missing}
    for key in ("min_value", "max_value"):
        if kwargs.get(key) is not None:
            out[key] = kwargs[key]
    return out


def _exception_message(info) -> str | None:
    """GE nests exception info per metric in some versions; find the first message."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception") and info.get("exception_message"):
        return str(info["exception_message"]).splitlines()[0]
    for value in info.values():
        found = _exception_message(value)
        if found:
            return found
    return None


def validate(prepared: list[Prepared], data_dir: Path) -> list[CheckResult]:
    """Run GE on every prepared batch, rebuild Data Docs, return one result per check."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx  # noqa: PLC0415 - 5-9 s import: only inside the task
    from great_expectations.expectations.expectation_configuration import (  # noqa: PLC0415
        ExpectationConfiguration,
    )

    root = data_dir / "quality"
    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_or_update_pandas("warehouse")
    results: list[CheckResult] = []
    for p in prepared:
        name = f"{p.suite.name}.{p.batch.name}"
        if p.error is not None:
            results.append(
                CheckResult(
                    p.suite.name,
                    f"{p.batch.name}.readable",
                    p.target,
                    p.suite.severity,
                    False,
                    0,
                    {"error": p.error},
                    "the batch can be read (its table and columns exist)",
                )
            )
            continue
        names = {a.name for a in source.assets}
        asset = source.get_asset(name) if name in names else source.add_dataframe_asset(name)
        batch_def = next(
            (d for d in asset.batch_definitions if d.name == "whole"), None
        ) or asset.add_batch_definition_whole_dataframe("whole")
        suite = gx.ExpectationSuite(name=name, meta={"description": p.suite.description})
        for i, e in enumerate(p.expectations):
            suite.add_expectation_configuration(
                ExpectationConfiguration(
                    type=e.type, kwargs=e.kwargs, meta={"severity": e.severity, "index": i}
                )
            )
        suite = context.suites.add_or_update(suite)
        vd = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch_def, suite=suite)
        )
        outcome = vd.run(
            batch_parameters={"dataframe": p.frame}, result_format={"result_format": "SUMMARY"}
        )
        # GE does not keep the suite's order in its results: match them by index
        ordered = sorted(outcome.results, key=lambda r: r.expectation_config.meta["index"])
        for e, r in zip(p.expectations, ordered, strict=True):
            result = r.result or {}
            error = None if r.success else _exception_message(r.exception_info)
            observed = _observed(result, e.kwargs) | p.context
            if error:
                observed["error"] = error
            offending = result.get("unexpected_count")
            if offending is None:
                offending = 0 if r.success else 1
            results.append(
                CheckResult(
                    p.suite.name,
                    f"{p.batch.name}.{_label(e)}",
                    p.target,
                    e.severity,
                    bool(r.success),
                    int(offending),
                    observed,
                    p.suite.description,
                )
            )
    context.build_data_docs()
    return results


def run_layer(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    night: str,
    run_id: str,
    suites_dir: Path | None = None,
) -> list[CheckResult]:
    """Validate every suite of ``layer`` for the night ``night`` (YYYY-MM-DD)."""
    s = settings()
    as_of = datetime.fromisoformat(night)
    history.ensure_metrics(con)
    prepared, later = [], []
    for suite in load_suites(suites_dir or s.include_dir / "expectations", layer):
        p, rem = prepare(con, suite, as_of, night, s.dbt_project_dir)
        prepared += p
        later += rem
    results = validate(prepared, s.data_dir)
    # history feeds tomorrow's comparisons: only a night that passed may set the baseline
    if not any(r.status == "fail" for r in results):
        for metric, values in later:
            history.remember(con, night, run_id, metric, values)
    return results
