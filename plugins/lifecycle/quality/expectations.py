"""Run the expectation suites of one layer with Great Expectations on pandas DataFrames.

Each batch is read from DuckDB into pandas (GE's SQL route does not work on DuckDB) and
validated whole. Derived batches (volume, night-over-night drift, consent) are computed
here from the warehouse and ``ops.quality_metrics``, the history kept night by night.
Results become :class:`~lifecycle.quality.gate.CheckResult` rows; GE Data Docs (HTML)
are rebuilt under ``<data>/quality/gx/uncommitted/data_docs/local_site/``.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from lifecycle.config import settings
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

METRICS_DDL = """create table if not exists ops.quality_metrics (
    night date, metric varchar, key varchar, value double, run_id varchar,
    recorded_at timestamp default current_timestamp)"""


#: What derived batches read, for messages.
TARGETS = {
    "stage_shift": "marts.dim_contacts",
    "audience_sizes": "audiences.aud_*",
    "audience_consent": "audiences.aud_* x marts.dim_contact_consent",
}


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


# --- history ---------------------------------------------------------------------------


def _ensure_metrics(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(METRICS_DDL)


def previous(con, metric: str, key: str, night: str) -> tuple[str, float] | None:
    """The latest value recorded for ``metric``/``key`` on a night before ``night``."""
    row = con.execute(
        """select night, value from ops.quality_metrics
           where metric = ? and key = ? and night < ?::date order by night desc limit 1""",
        [metric, key, night],
    ).fetchone()
    return (str(row[0]), float(row[1])) if row else None


def remember(con, night: str, run_id: str, metric: str, values: dict[str, float]) -> None:
    """Store tonight's values (a re-run of the night replaces them)."""
    con.execute(
        "delete from ops.quality_metrics where night = ?::date and metric = ?", [night, metric]
    )
    con.executemany(
        "insert into ops.quality_metrics (night, metric, key, value, run_id) "
        "values (?::date, ?, ?, ?, ?)",
        [[night, metric, k, float(v), run_id] for k, v in values.items()],
    )


# --- derived batches -------------------------------------------------------------------


def _between(column: str, lo=None, hi=None, severity: str = "fail") -> Expectation:
    kwargs = {"column": column}
    if lo is not None:
        kwargs["min_value"] = lo
    if hi is not None:
        kwargs["max_value"] = hi
    return Expectation("expect_column_values_to_be_between", kwargs, severity)


def _daily_volume(con, p: dict, as_of: datetime, sev: str):
    table, ts, days = p["table"], p["timestamp"], int(p.get("trailing_days", 7))
    day_start = as_of - timedelta(days=1)
    since = day_start - timedelta(days=days)
    day_rows, first_seen, trailing_rows = con.execute(
        f"""select count(*) filter (where "{ts}" >= ? and "{ts}" < ?),
                   min("{ts}") filter (where "{ts}" >= ?),
                   count(*) filter (where "{ts}" >= ? and "{ts}" < ?)
            from {table}""",
        [day_start, as_of, since, since, day_start],
    ).fetchone()
    # a young table has fewer trailing days than asked for: average over those it has
    if first_seen is not None:
        first_day = pd.Timestamp(first_seen).tz_localize(None).floor("D").to_pydatetime()
        n_days = max(1, min(days, (day_start - max(first_day, since)).days))
    else:
        n_days = days
    avg = trailing_rows / n_days
    lo = math.floor(float(p.get("min_ratio", 0.5)) * avg)
    hi = math.ceil(float(p.get("max_ratio", 2.0)) * avg) if avg else None
    frame = pd.DataFrame({"day": [day_start.date().isoformat()], "day_rows": [day_rows]})
    ctx = {"trailing_avg": round(avg, 1), "trailing_days": n_days}
    return frame, [_between("day_rows", lo, hi, sev)], ctx, ("daily_rows", {table: day_rows})


def _row_count_change(con, p: dict, sev: str, night: str):
    table = p["table"]
    rows = con.execute(f"select count(*) from {table}").fetchone()[0]
    prev = previous(con, "row_count", table, night)
    if prev:
        lo = math.ceil(prev[1] * (1 - float(p.get("max_drop", 0.1))))
        hi = math.floor(prev[1] * (1 + float(p.get("max_growth", 1.0))))
        ctx = {"previous_night": prev[0], "previous_rows": int(prev[1])}
    else:
        lo, hi, ctx = 1, None, {"previous_night": None}
    frame = pd.DataFrame({"table": [table], "rows": [rows]})
    return frame, [_between("rows", lo, hi, sev)], ctx, ("row_count", {table: rows})


def _stage_shift(con, p: dict, sev: str, night: str):
    counts = dict(
        con.execute(
            "select lifecycle_stage, count(*) from marts.dim_contacts group by 1"
        ).fetchall()
    )
    total = sum(counts.values()) or 1
    shares = {k: v / total for k, v in counts.items() if k is not None}
    prev_night = con.execute(
        "select max(night) from ops.quality_metrics where metric = 'stage_share' "
        "and night < ?::date",
        [night],
    ).fetchone()[0]
    prev = (
        dict(
            con.execute(
                "select key, value from ops.quality_metrics "
                "where metric = 'stage_share' and night = ?",
                [prev_night],
            ).fetchall()
        )
        if prev_night
        else dict(shares)
    )
    stages = sorted(set(shares) | set(prev))
    frame = pd.DataFrame(
        {
            "stage": stages,
            "share": [shares.get(s, 0.0) for s in stages],
            "previous_share": [prev.get(s, 0.0) for s in stages],
        }
    )
    frame["shift"] = (frame["share"] - frame["previous_share"]).abs().round(4)
    worst = frame.sort_values("shift").iloc[-1] if len(frame) else None
    ctx = {
        "previous_night": str(prev_night) if prev_night else None,
        "largest_shift": f"{worst['stage']} {worst['shift']:.3f}" if worst is not None else None,
    }
    exp = _between("shift", None, float(p.get("tolerance", 0.1)), sev)
    return frame, [exp], ctx, ("stage_share", shares)


def _audience_tables(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'audiences' "
            "and table_catalog = current_database() and table_name like 'aud_%' order by 1"
        ).fetchall()
    ]


def _audience_sizes(con, p: dict, sev: str, night: str):
    sizes = {
        t: con.execute(f"select count(*) from audiences.{t}").fetchone()[0]
        for t in _audience_tables(con)
    }
    rows = []
    for t, n in sizes.items():
        prev = previous(con, "audience_size", t, night)
        change = abs(n - prev[1]) / max(prev[1], 1) if prev else 0.0
        rows.append(
            {
                "audience": t,
                "size": n,
                "previous_size": prev[1] if prev else None,
                "change": round(change, 4),
            }
        )
    frame = pd.DataFrame(rows, columns=["audience", "size", "previous_size", "change"])
    exp = _between("change", None, float(p.get("tolerance", 0.5)), sev)
    return frame, [exp], {"sizes": sizes}, ("audience_size", sizes)


#: Per contact, from the one consent model: email_marketing granted, or every ad
#: purpose granted (the channels an audience may be sent to).
_CONSENT_BY_CONTACT = """
    select
        contact_id,
        bool_or(is_granted and purpose = 'email_marketing') as email_ok,
        coalesce(bool_and(is_granted) filter (where channel = 'ads'), false) as ads_ok
    from marts.dim_contact_consent
    group by contact_id
"""


def _audience_consent(con, p: dict, sev: str):
    parts = []
    # CRM write-back models live beside the audiences but go to no marketing channel.
    exclude = set(p.get("exclude") or [])
    for t in _audience_tables(con):
        if t in exclude:
            continue
        parts.append(
            f"select '{t}' as audience, a.contact_id, "
            f"coalesce(c.email_ok or c.ads_ok, false) as has_any_consent "
            f"from audiences.{t} a left join consent c using (contact_id)"
        )
    if parts:
        frame = con.execute(
            f"with consent as ({_CONSENT_BY_CONTACT}) " + " union all ".join(parts)
        ).df()
    else:
        frame = pd.DataFrame({"audience": [], "contact_id": [], "has_any_consent": []})
    exp = Expectation(
        "expect_column_values_to_be_in_set",
        {"column": "has_any_consent", "value_set": [True]},
        sev,
    )
    bad = frame[~frame["has_any_consent"].astype(bool)]
    ctx = {"audiences": len(parts), "consent_model": "marts.dim_contact_consent"}
    if len(bad):
        ctx["without_consent"] = bad.groupby("audience").size().astype(int).to_dict()
        ctx["contacts"] = bad["contact_id"].astype(str).head(5).tolist()
    return frame, [exp], ctx


# --- preparing and running -------------------------------------------------------------


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
        target = b.table or b.params.get("table") or TARGETS.get(b.derived, suite.name)
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
            elif b.derived == "daily_volume":
                frame, exps, ctx, rem = _daily_volume(con, b.params, as_of, suite.severity)
                later.append(rem)
            elif b.derived == "row_count_change":
                frame, exps, ctx, rem = _row_count_change(con, b.params, suite.severity, night)
                later.append(rem)
            elif b.derived == "stage_shift":
                frame, exps, ctx, rem = _stage_shift(con, b.params, suite.severity, night)
                later.append(rem)
            elif b.derived == "audience_sizes":
                frame, exps, ctx, rem = _audience_sizes(con, b.params, suite.severity, night)
                later.append(rem)
            elif b.derived == "audience_consent":
                frame, exps, ctx = _audience_consent(con, b.params, suite.severity)
            else:  # pragma: no cover - load_suite rejects unknown kinds
                raise ValueError(b.derived)
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
    _ensure_metrics(con)
    prepared, later = [], []
    for suite in load_suites(suites_dir or s.include_dir / "expectations", layer):
        p, rem = prepare(con, suite, as_of, night, s.dbt_project_dir)
        prepared += p
        later += rem
    results = validate(prepared, s.data_dir)
    # history feeds tomorrow's comparisons: only a night that passed may set the baseline
    if not any(r.status == "fail" for r in results):
        for metric, values in later:
            remember(con, night, run_id, metric, values)
    return results
