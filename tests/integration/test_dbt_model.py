"""The dbt model on a small simulated world ingested over HTTP into a real DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest
from sources_support import ingest_world

from lifecycle.sandbox.accounts import gone_at_first_load
from lifecycle.sandbox.world import WorldConfig

ROOT = Path(__file__).resolve().parents[2]
DBT = str(Path(sys.executable).parent / "dbt")
NIGHT = "2026-07-01"
#: Columns dim_contacts had before this model grew; other parts of the product read them.
SKELETON_COLUMNS = {
    "contact_id",
    "company_id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "country_code",
    "job_title",
    "company_name",
    "industry",
    "employee_count",
    "lifecycle_stage",
    "stage_entered_at",
    "highest_forward_stage",
    "hubspot_lifecycle_stage",
    "fit_score",
    "engagement_score",
    "lead_score",
    "lead_score_reasons",
    "orders_count",
    "revenue_usd",
    "first_ordered_at",
    "last_ordered_at",
    "first_touch_medium",
    "first_touch_source",
    "first_touch_campaign",
    "email_status",
    "has_email_consent",
    "has_ad_consent",
    "created_at",
    "updated_at",
    "as_of",
}
AUDIENCE_COLUMNS = [
    "contact_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "country_code",
    "lifecycle_stage",
    "lead_score",
    "has_email_consent",
    "has_ad_consent",
    "email_status",
]
AUDIENCES = [
    "aud_welcome",
    "aud_nurture",
    "aud_sales_ready",
    "aud_cart_abandoners",
    "aud_win_back",
    "aud_vip",
    "aud_advocates",
    "aud_lookalike_seed",
]


def dbt(warehouse: Path, *args: str, as_of: str = NIGHT) -> subprocess.CompletedProcess:
    project = str(ROOT / "dbt_project")
    env = {
        **os.environ,
        "LIFECYCLE_WAREHOUSE_PATH": str(warehouse),
        "LIFECYCLE_DBT_TARGET": "duckdb",
    }
    cmd = [
        DBT,
        *args,
        "--project-dir",
        project,
        "--profiles-dir",
        project,
        "--target-path",
        str(warehouse.parent / "dbt_target"),
        "--log-path",
        str(warehouse.parent / "dbt_logs"),
        "--vars",
        f"{{as_of: '{as_of}'}}",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 300-contact world served, ingested and built once for this module."""
    data = tmp_path_factory.mktemp("dbt_model")
    world = ingest_world(data, WorldConfig(contacts=300, seed=21))
    warehouse = data / "warehouse.duckdb"
    dbt(warehouse, "build")
    return world, warehouse


def query(warehouse: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_dim_contacts_keeps_every_skeleton_column_and_adds_the_grade(built):
    _, warehouse = built
    cols = {r[0] for r in query(warehouse, "describe marts.dim_contacts")}
    assert cols >= SKELETON_COLUMNS, SKELETON_COLUMNS - cols
    grades = {r[0] for r in query(warehouse, "select distinct lead_grade from marts.dim_contacts")}
    assert grades <= {f"{a}{d}" for a in "ABC" for d in "123"}
    assert len(grades) >= 3


def test_every_audience_has_the_contract_columns_one_row_per_contact_and_consent(built):
    _, warehouse = built
    for name in AUDIENCES:
        cols = [r[0] for r in query(warehouse, f"describe audiences.{name}")]
        assert cols[: len(AUDIENCE_COLUMNS)] == AUDIENCE_COLUMNS, name
        n, distinct, unconsented = query(
            warehouse,
            f"select count(*), count(distinct contact_id), "
            f"count(*) filter (where not (has_email_consent or has_ad_consent)) "
            f"from audiences.{name}",
        )[0]
        assert n == distinct and unconsented == 0, name
    # the activation test relies on sales-ready being ad-consented MQL/SQL contacts only
    bad = query(
        warehouse,
        "select count(*) from audiences.aud_sales_ready "
        "where not has_ad_consent or lifecycle_stage not in ('mql', 'sql')",
    )[0][0]
    assert bad == 0


def test_machine_opens_are_told_apart_from_people(built):
    world, warehouse = built
    act = world.email_activity
    act = act[(act.action == "open") & (act.ts < world.now_ts)]
    # people the vendors archived or deleted are erased from every mart (issue 10)
    act = act[~act.person.isin(gone_at_first_load(world, world.now_ts))]
    want_machine = int(act.is_machine.sum())
    got_machine, got_human = query(
        warehouse,
        "select sum(email_machine_opens), sum(email_opens) from marts.fct_contact_engagement_daily",
    )[0]
    assert want_machine > 0
    assert abs(got_machine - want_machine) <= 0.01 * want_machine
    assert abs(got_human - (len(act) - want_machine)) <= 0.01 * len(act)


def test_first_touch_channel_is_the_channel_people_came_from(built):
    world, warehouse = built
    truth = dict(zip(world.contacts.hubspot_id, world.contacts.channel, strict=True))
    rows = query(warehouse, "select contact_id, first_touch_channel from marts.dim_contacts")
    agree = sum(truth[cid] == channel for cid, channel in rows) / len(rows)
    assert agree >= 0.98


def test_stage_history_records_lapse_and_return(built):
    _, warehouse = built
    kinds = dict(
        query(
            warehouse,
            "select transition_type, count(*) from marts.fct_stage_transitions group by 1",
        )
    )
    assert kinds.get("lapse", 0) > 0 and kinds.get("forward", 0) > 0
    # the funnel's conversion rates are proportions of the contacts that reached a stage
    assert (
        query(
            warehouse,
            "select count(*) from marts.fct_lifecycle_funnel "
            "where contacts_converted > contacts_reached "
            "or conversion_rate not between 0 and 1",
        )[0][0]
        == 0
    )


def test_incremental_sessions_across_nights_equal_a_full_rebuild(built, tmp_path):
    _, warehouse = built
    q = "select * from intermediate.int_sessions order by session_id"
    full = query(warehouse, q)
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    dbt(copy, "run", "-s", "int_sessions", "--full-refresh", as_of="2026-06-20")
    assert len(query(copy, q)) < len(full)
    # one night after the other, then a gap longer than the re-sessionization window
    dbt(copy, "run", "-s", "int_sessions", as_of="2026-06-21")
    dbt(copy, "run", "-s", "int_sessions", as_of=NIGHT)
    assert query(copy, q) == full


def test_rebuilding_the_same_night_changes_nothing(built, tmp_path):
    _, warehouse = built
    q = (
        "select contact_id, lifecycle_stage, lead_score, lead_grade, engagement_segment "
        "from marts.dim_contacts order by contact_id"
    )
    before = query(warehouse, q)
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    dbt(copy, "build")
    assert query(copy, q) == before


def test_docs_generate_and_every_mart_column_is_described(built):
    import json

    _, warehouse = built
    proc = dbt(warehouse, "docs", "generate")
    assert "Catalog written" in proc.stdout
    target = warehouse.parent / "dbt_target"
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    undocumented = {}
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "model" or node["schema"] not in ("marts", "audiences"):
            continue
        assert node["description"].strip(), f"{node['name']} has no description"
        described = {k.lower() for k, v in node["columns"].items() if v.get("description")}
        built_cols = {k.lower() for k in catalog["nodes"][uid]["columns"]}
        assert {k.lower() for k in node["columns"]} <= built_cols, node["name"]
        if built_cols - described:
            undocumented[node["name"]] = sorted(built_cols - described)
    assert undocumented == {}


def test_mql_entries_are_the_days_the_true_score_crossed_on_a_clean_world(built):
    """On the clean profile every device identifies and nothing is a bot, so the SQL
    score history must find exactly the crossings the simulator's own (numpy) scoring of
    the true events finds: two implementations of the seed's rules, one answer."""
    world, warehouse = built
    c = world.contacts[world.contacts.is_known.to_numpy()]
    now = world.now_ts
    c = c[~c.person.isin(gone_at_first_load(world, now))]  # erased (issue 10)
    want = {
        (h, int(np.floor(t * 1000)))
        for h, t in zip(c.hubspot_id, c.mql_at, strict=True)
        if t == t and t < now - 86_400
    }
    got = set(
        query(
            warehouse,
            "select contact_id, epoch_ms(entered_at) from intermediate.int_lifecycle_stage_entries "
            f"where stage = 'mql' and entered_at < timestamp '{NIGHT}' - interval 1 day",
        )
    )
    assert len(want) >= 20
    assert got == want


def test_incremental_lead_score_history_across_nights_equals_a_full_rebuild(built, tmp_path):
    _, warehouse = built
    q = "select * from intermediate.int_lead_score_history order by lead_score_day_id"
    full = query(warehouse, q)
    copy = tmp_path / "warehouse.duckdb"
    copy.write_bytes(warehouse.read_bytes())
    sel = ["-s", "int_lead_score_history"]
    dbt(copy, "run", *sel, "--full-refresh", as_of="2026-06-10")
    assert len(query(copy, q)) < len(full)
    for night in ("2026-06-15", "2026-06-20", "2026-06-25", NIGHT):
        dbt(copy, "run", *sel, as_of=night)
    assert query(copy, q) == full
