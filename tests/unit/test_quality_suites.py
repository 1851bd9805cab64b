"""Suite files and freshness thresholds: parsed, validated and resolved without GE."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from lifecycle.quality import freshness
from lifecycle.quality.gate import CheckResult, QualityGateFailed, decide
from lifecycle.quality.suites import (
    SuiteError,
    load_suite,
    load_suites,
    partition_sql,
    placeholders,
    resolve,
    sql_literals,
)

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "include" / "expectations"


def test_shipped_suites_load_with_their_layers_and_severities():
    suites = {s.name: s for s in load_suites(SUITES)}
    assert {"raw_hubspot", "raw_segment", "raw_mailchimp", "marts", "marts_drift"} <= set(suites)
    assert {s.layer for s in suites.values()} == {"raw", "marts"}
    assert suites["marts_drift"].severity == "warn"
    assert suites["raw_hubspot"].severity == "fail"
    kinds = {b.derived for s in suites.values() for b in s.batches if b.derived}
    assert kinds == {
        "daily_volume",
        "row_count_change",
        "stage_shift",
        "audience_sizes",
        "audience_consent",
    }
    # per-expectation severity override: an unknown event name warns, it does not block
    events = next(b for b in suites["raw_segment"].batches if b.name == "events")
    sev = {(e.type, e.kwargs.get("column")): e.severity for e in events.expectations}
    assert sev[("expect_column_values_to_be_in_set", "event")] == "warn"
    assert sev[("expect_column_values_to_be_unique", "message_id")] == "fail"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("suite: x\nlayer: raw\nseverity: fail\n", "missing required key 'batches'"),
        ("suite: x\nlayer: gold\nseverity: fail\nbatches: []\n", "layer 'gold'"),
        (
            "suite: x\nlayer: raw\nseverity: fail\nbatches:\n  - name: b\n    table: t\n"
            "    expectations:\n      - check_unique: {column: id}\n",
            "not a Great Expectations",
        ),
        (
            "suite: x\nlayer: raw\nseverity: fail\nbatches:\n  - name: b\n    table: t\n"
            "    sql: select 1\n    expectations: []\n",
            "exactly one of table, sql",
        ),
        ("suite: x\nlayer: raw\nseverity: block\nbatches: []\n", "severity 'block'"),
        (
            "suite: x\nlayer: raw\nseverity: fail\nbatches:\n  - name: b\n    table: t\n"
            "    partition: ts\n    expectations:\n      - expect_column_values_to_be_unique:"
            " {column: id}\n",
            "partition needs the suite's partition_days",
        ),
        (
            "suite: x\nlayer: raw\nseverity: fail\npartition_days: 4\nbatches:\n  - name: b\n"
            "    sql: select 1\n    partition: ts\n    expectations:\n"
            "      - expect_column_values_to_be_unique: {column: id}\n",
            "partition applies to table batches only",
        ),
    ],
)
def test_malformed_suites_name_the_file_and_problem(tmp_path, body, message):
    p = tmp_path / "broken.yml"
    p.write_text(body)
    with pytest.raises(SuiteError, match=message) as err:
        load_suite(p)
    assert "broken.yml" in str(err.value)


def test_placeholders_resolve_to_the_night_not_the_wall_clock():
    suite = next(s for s in load_suites(SUITES) if s.name == "raw_segment")
    values = placeholders(datetime(2026, 7, 1), suite, ROOT / "dbt_project")
    kwargs = resolve(
        {"column": "ts", "max_value": "{future_cutoff}", "value_set": "{lifecycle_stages}"}, values
    )
    assert kwargs["max_value"] == datetime(2026, 7, 1) + timedelta(hours=24)
    assert kwargs["value_set"][:3] == ["awareness", "subscriber", "lead"]
    assert sql_literals("where t < {as_of}", values) == "where t < timestamp '2026-07-01 00:00:00'"
    with pytest.raises(SuiteError, match="unknown placeholder"):
        resolve("{tomorrow}", values)


def test_gate_decision_fails_only_on_fail_severity():
    ok = CheckResult("s", "a", "t", "fail", True)
    warn = CheckResult("s", "b", "t", "warn", False, 3)
    assert decide([ok, warn]) == {"pass": 1, "warn": 1, "fail": 0}
    bad = CheckResult("s", "c.expect_x(id)", "raw.t", "fail", False, 7, {"examples": ["k1"]})
    with pytest.raises(QualityGateFailed, match=r"c.expect_x\(id\) on raw.t - 7 offending rows"):
        decide([ok, warn, bad])


def _manifest(tmp_path: Path) -> Path:
    def node(source, table, field, warn=None, error=None):
        block = {
            "warn_after": {"count": warn, "period": "day" if warn else None},
            "error_after": {"count": error, "period": "day" if error else None},
        }
        return {
            "source_name": source,
            "name": table,
            "identifier": table,
            "schema": f"raw_{source}",
            "loaded_at_field": field,
            "freshness": block,
        }

    m = {
        "sources": {
            "a": node("crm", "contacts", "updated_at", 2, 7),
            "b": node("crm", "companies", "updated_at", 2, 7),
            "c": node("email", "members", "changed", 7),
            "d": node("email", "campaigns", None),
        }
    }
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps(m))
    return p


def test_freshness_thresholds_come_from_the_manifest(tmp_path):
    got = freshness.from_manifest(_manifest(tmp_path))
    assert [(f.table, f.warn_after, f.error_after) for f in got] == [
        ("raw_crm.companies", timedelta(days=2), timedelta(days=7)),
        ("raw_crm.contacts", timedelta(days=2), timedelta(days=7)),
        ("raw_email.members", timedelta(days=7), None),
    ]


def test_freshness_is_judged_at_the_night_per_source(tmp_path):
    con = duckdb.connect()
    con.execute("create schema raw_crm; create schema raw_email")
    # companies rarely change: the source is as fresh as its freshest table
    con.execute("create table raw_crm.contacts as select timestamp '2026-06-29 12:00' updated_at")
    con.execute("create table raw_crm.companies as select timestamp '2025-01-01' updated_at")
    con.execute("create table raw_email.members as select timestamp '2026-06-20' changed")
    sources = freshness.from_manifest(_manifest(tmp_path))
    night = datetime(2026, 7, 1)
    res = {r.check: r for r in freshness.check(con, sources, night)}
    assert res["source_freshness(crm)"].status == "pass"
    assert res["source_freshness(crm)"].observed["age_hours"] == 36.0
    assert res["source_freshness(email)"].status == "warn"  # 11 days > warn 7, no error_after
    # the same data judged for a later night: crm is now past error_after
    later = {r.check: r for r in freshness.check(con, sources, night + timedelta(days=6))}
    assert later["source_freshness(crm)"].status == "fail"
    con.execute("drop table raw_crm.contacts; drop table raw_crm.companies")
    gone = {r.check: r for r in freshness.check(con, sources, night)}
    assert gone["source_freshness(crm)"].status == "fail"
    assert "raw_crm.contacts" in gone["source_freshness(crm)"].observed["error"]


def test_a_partitioned_batch_reads_the_night_and_late_days_and_null_timestamps():
    suite = next(s for s in load_suites(SUITES) if s.name == "raw_segment")
    events = next(b for b in suite.batches if b.name == "events")
    # the window is the sessions' late-data window, read from dbt_project.yml
    assert events.partition == "timestamp"
    assert suite.partition_days == "sessionization_lookback_days"
    values = placeholders(datetime(2026, 7, 1), suite, ROOT / "dbt_project")
    assert values["partition_start"] == datetime(2026, 6, 27)
    con = duckdb.connect()
    con.execute("create schema raw_segment")
    con.execute("""create table raw_segment.events as select * from (values
        (1, timestamp '2026-06-20 12:00'), (2, timestamp '2026-06-26 23:59'),
        (3, timestamp '2026-06-27 00:00'), (4, timestamp '2026-06-30 08:00'),
        (5, timestamp '2026-07-03 00:00'), (6, null)) t(id, "timestamp")""")
    read = sorted(r[0] for r in con.execute(partition_sql(events, values)).fetchall())
    # from 4 days before the night on, future rows (the future check needs them) and nulls
    assert read == [3, 4, 5, 6]
    members = next(b for b in load_suites(SUITES) if b.name == "raw_mailchimp").batches[0]
    assert members.partition is None
    assert partition_sql(members, values) == "select * from raw_mailchimp.members"


def test_the_raw_partition_follows_the_dbt_late_data_window(tmp_path):
    """One home: change sessionization_lookback_days and the raw suites read that many
    days; a var that is not there is a clear error."""
    project = tmp_path / "dbt_project"
    (project / "seeds").mkdir(parents=True)
    shutil.copy(ROOT / "dbt_project" / "seeds" / "lifecycle_stages.csv", project / "seeds")
    text = (ROOT / "dbt_project" / "dbt_project.yml").read_text()
    assert "sessionization_lookback_days: 4\n" in text
    (project / "dbt_project.yml").write_text(
        text.replace("sessionization_lookback_days: 4\n", "sessionization_lookback_days: 6\n")
    )
    for name in ("raw_segment", "raw_mailchimp"):
        suite = next(s for s in load_suites(SUITES) if s.name == name)
        values = placeholders(datetime(2026, 7, 1), suite, project)
        assert values["partition_start"] == datetime(2026, 6, 25), name
    (project / "dbt_project.yml").write_text("name: x\nvars: {}\n")
    with pytest.raises(SuiteError, match="dbt var 'sessionization_lookback_days' is not in"):
        placeholders(datetime(2026, 7, 1), suite, project)
