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
from lifecycle.sandbox.hubspot import records as hubspot_records
from lifecycle.tasks import ingest

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
EVERY = 100_000  # more records than any page holds: the fault hits every record served
#: Pages of members one load reads from the sandbox (two lists, each under 1000 members);
#: on 3782d48 there is one list and the second fault stays queued, harmlessly.
LISTS = 2
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
        "stg_ops__erased_identifiers",  # every staging model leaves erased people out
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


@pytest.mark.parametrize("field", ["timestamp_signup", "timestamp_opt"])
def test_mailchimp_members_with_an_empty_timestamp_on_every_record_build(sandbox, field):
    """Finding 1 reproduced: ``""`` on every member (Mailchimp's value for imported ones)."""
    # a record fault applies to one page: one per list the account has
    fault = {"kind": "changed_type", "object": "members", "field": field, "value": ""}
    add_faults(sandbox, "mailchimp", [{**fault, "count": EVERY}] * LISTS)
    ingest("mailchimp")
    served, empty = query(
        f"select count(*), count(*) filter (where {field} = '') from raw_mailchimp.members"
    )[0]
    assert served == empty > 0
    proc = dbt_run("stg_mailchimp__members")
    assert proc.returncode == 0, proc.stdout[-3000:]
    n, parsed, raw_empty = query(
        f"select count(*), count({STAGED[field]}), count(*) filter (where {field}_raw = '') "
        "from staging.stg_mailchimp__members"
    )[0]
    assert n > 0 and raw_empty > 0
    assert parsed == n - raw_empty, "every empty string parses to null, the rest to a time"
    assert "TIMESTAMP" in column_types("staging.stg_mailchimp__members")[STAGED[field]]


@pytest.mark.parametrize("field", ["timestamp_signup", "timestamp_opt"])
def test_mailchimp_members_lacking_a_timestamp_on_every_record_build(sandbox, field):
    """The second shape of finding 1: the field absent from every member of the load."""
    add_faults(
        sandbox,
        "mailchimp",
        [{"kind": "missing_field", "object": "members", "field": field, "count": EVERY}] * LISTS,
    )
    ingest("mailchimp")
    assert field in column_types("raw_mailchimp.members"), "declared: lands as a typed null"
    assert query(f"select count({field}) from raw_mailchimp.members")[0][0] == 0
    proc = dbt_run("stg_mailchimp__members")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert query(f"select count({STAGED[field]}) from staging.stg_mailchimp__members")[0][0] == 0


def test_hubspot_optional_properties_absent_null_or_empty_build(sandbox):
    """HubSpot leaves an unset property out or sends null; a cleared one can be ``""``.

    Every contact lacks ``phone``, every deal has ``closedate`` as ``""`` and every
    company ``numberofemployees`` as ``""`` (a record fault hits one response, so one is
    queued per page: 100 records, 50 for contacts and deals, whose full load asks for
    their property history): the load keeps each column typed, staging parses ``""`` to
    null.
    """
    world, now = sandbox.world, sandbox.world.now_ts

    def pages(records: list, size: int = 100) -> int:
        return -(-len(records) // size)

    add_faults(
        sandbox,
        "hubspot",
        [{"kind": "missing_field", "object": "contacts", "field": "phone", "count": EVERY}]
        * pages(hubspot_records.contacts(world, now), 50)
        + [
            {
                "kind": "changed_type",
                "object": "deals",
                "field": "closedate",
                "value": "",
                "count": EVERY,
            }
        ]
        * pages(hubspot_records.deals(world, now), 50)
        + [
            {
                "kind": "changed_type",
                "object": "companies",
                "field": "numberofemployees",
                "value": "",
                "count": EVERY,
            }
        ]
        * pages(hubspot_records.companies(world, now)),
    )
    ingest("hubspot")
    contacts = column_types("raw_hubspot.contacts")
    assert contacts["phone"] == "VARCHAR"
    assert contacts["hs_lifecyclestage_lead_date"] == "VARCHAR", "an optional date lands as sent"
    assert "closedate__v_text" not in column_types("raw_hubspot.deals")
    proc = dbt_run("stg_hubspot__contacts", "stg_hubspot__deals", "stg_hubspot__companies")
    assert proc.returncode == 0, proc.stdout[-3000:]
    n, phones = query("select count(*), count(phone) from staging.stg_hubspot__contacts")[0]
    assert n > 0 and phones == 0
    n, amounts, closed = query(
        "select count(*), count(amount_usd), count(closed_at) from staging.stg_hubspot__deals"
    )[0]
    assert n > 0 and amounts == n and closed == 0
    n, employees, raw_empty = query(
        "select count(*), count(employee_count), "
        "count(*) filter (where numberofemployees_raw = '') from staging.stg_hubspot__companies"
    )[0]
    assert n > 0 and employees == 0 and raw_empty == n
    types = column_types("staging.stg_hubspot__deals")
    assert types["amount_usd"] == "DOUBLE" and "TIMESTAMP" in types["closed_at"]
