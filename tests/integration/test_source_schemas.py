"""Declared source schemas: optional fields that are absent, null or "" on every record.

Finding 1 of issue 10: a Mailchimp list whose members all carry ``timestamp_signup: ""``
(every imported member) or lack it (another list) broke ``stg_mailchimp__members`` with
a binder error. Each test here feeds such records over HTTP through the sandbox's
record faults, loads them with the real connector and builds the staging models with
dbt: the night must build, the field must land as a typed null and the raw value stay.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sources_support import add_faults, query

from lifecycle.config import settings
from lifecycle.tasks import ingest

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
EVERY = 100_000  # more records than any page holds: the fault hits every record served
#: Where staging puts each Mailchimp timestamp (parsed) beside its raw text.
STAGED = {"timestamp_signup": "signup_at", "timestamp_opt": "opted_in_at"}


def dbt_run(*select: str) -> subprocess.CompletedProcess:
    """``dbt run`` of the selected models on this test's warehouse; returns the process."""
    s = settings()
    project = str(ROOT / "dbt_project")
    work = s.data_dir / "dbt"
    cmd = [
        DBT,
        "run",
        "--select",
        *select,
        "--project-dir",
        project,
        "--profiles-dir",
        project,
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
        "--vars",
        "{as_of: '2026-07-01'}",
    ]
    env = {
        **os.environ,
        "LIFECYCLE_WAREHOUSE_PATH": str(s.warehouse_path),
        "LIFECYCLE_DBT_TARGET": "duckdb",
    }
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def column_types(table: str) -> dict[str, str]:
    schema, name = table.split(".")
    return dict(
        query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [schema, name],
        )
    )


#: Removed by the fix: on 3782d48 each test fails (binder error on ``timezone(.., VARCHAR)``
#: in stg_mailchimp__members; the absent field has no column at all).
REPRODUCED = pytest.mark.xfail(strict=True, reason="issue 10 finding 1, not fixed yet")


@REPRODUCED
@pytest.mark.parametrize("field", ["timestamp_signup", "timestamp_opt"])
def test_mailchimp_members_with_an_empty_timestamp_on_every_record_build(sandbox, field):
    """Finding 1 reproduced: ``""`` on every member (Mailchimp's value for imported ones)."""
    add_faults(
        sandbox,
        "mailchimp",
        [
            {
                "kind": "changed_type",
                "object": "members",
                "field": field,
                "value": "",
                "count": EVERY,
            }
        ],
    )
    ingest("mailchimp")
    assert (
        query(f"select count(*), count(*) filter (where {field} = '') from raw_mailchimp.members")[
            0
        ][1]
        > 0
    )
    proc = dbt_run("stg_mailchimp__members")
    assert proc.returncode == 0, proc.stdout[-3000:]
    n, parsed, raw_empty = query(
        f"select count(*), count({STAGED[field]}), count(*) filter (where {field}_raw = '') "
        "from staging.stg_mailchimp__members"
    )[0]
    assert n > 0 and raw_empty > 0
    assert parsed == n - raw_empty, "every empty string parses to null, the rest to a time"
    assert "TIMESTAMP" in column_types("staging.stg_mailchimp__members")[STAGED[field]]


@REPRODUCED
@pytest.mark.parametrize("field", ["timestamp_signup", "timestamp_opt"])
def test_mailchimp_members_lacking_a_timestamp_on_every_record_build(sandbox, field):
    """The second shape of finding 1: the field absent from every member of the load."""
    add_faults(
        sandbox,
        "mailchimp",
        [{"kind": "missing_field", "object": "members", "field": field, "count": EVERY}],
    )
    ingest("mailchimp")
    assert field in column_types("raw_mailchimp.members"), "declared: lands as a typed null"
    assert query(f"select count({field}) from raw_mailchimp.members")[0][0] == 0
    proc = dbt_run("stg_mailchimp__members")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(f"select count({STAGED[field]}) from staging.stg_mailchimp__members")[0][0] == 0
