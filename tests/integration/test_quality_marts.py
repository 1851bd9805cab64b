"""The marts suites on small hand-made marts: what BI and activation must never see."""

from __future__ import annotations

import duckdb
import pytest

from lifecycle.quality.gate import QualityGateFailed

STAGES = ["subscriber"] * 40 + ["lead"] * 30 + ["mql"] * 20 + ["customer"] * 10


@pytest.fixture()
def marts(data_dir, dbt_manifest):
    """marts.dim_contacts (100 contacts), their stage history, one audience."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create schema marts; create schema audiences")
    con.execute("""create table marts.dim_contacts (contact_id varchar, lifecycle_stage varchar,
        lead_score double, has_ad_consent boolean, has_email_consent boolean)""")
    con.executemany(
        "insert into marts.dim_contacts values (?, ?, ?, ?, ?)",
        [[f"c{i}", s, i % 101, i % 2 == 0, i % 3 == 0] for i, s in enumerate(STAGES)],
    )
    con.execute("""create table marts.fct_lifecycle_stage_history as
        select contact_id, lifecycle_stage as stage, true as is_current from marts.dim_contacts""")
    # the consent model, one row per contact and purpose, agreeing with the flags above
    con.execute("""create table marts.dim_contact_consent as
        select contact_id, 'email_marketing' as purpose, 'email' as channel,
               has_email_consent as is_granted from marts.dim_contacts
        union all
        select contact_id, p.purpose, 'ads', has_ad_consent from marts.dim_contacts,
               (values ('ad_user_data'), ('ad_personalization')) p(purpose)""")
    con.execute("""create table audiences.aud_sales_ready as select contact_id from
        marts.dim_contacts where lifecycle_stage = 'mql' and has_ad_consent""")
    con.close()
    return path


def _run(night: str, run_id: str = "r"):
    from lifecycle.tasks import quality_check

    return quality_check("marts", run_id, night)


def _sql(path, *statements):
    con = duckdb.connect(str(path))
    for s in statements:
        con.execute(s)
    con.close()


def test_good_marts_pass(marts):
    out = _run("2026-07-01")
    assert out["fail"] == 0 and out["warn"] == 0 and out["pass"] >= 8


def test_audience_member_without_any_consent_fails(marts):
    # c1: odd (no ad consent), not a multiple of 3 (no email consent)
    _sql(marts, "insert into audiences.aud_sales_ready values ('c1'), ('c5')")
    with pytest.raises(QualityGateFailed) as err:
        _run("2026-07-01")
    (failed,) = err.value.failed
    assert failed.check == "audience_consent.expect_column_values_to_be_in_set(has_any_consent)"
    assert failed.offending_rows == 2


def test_audience_is_judged_on_the_consent_model_not_on_its_own_columns(marts):
    # the audience claims consent for 4 contacts; the model grants it to c0 only (c0:
    # email and ads; c1..c3: neither channel whole)
    _sql(
        marts,
        """create table audiences.aud_welcome as select contact_id,
                   true as has_ad_consent, true as has_email_consent
                   from marts.dim_contacts where contact_id in ('c0', 'c1', 'c5', 'c7')""",
    )
    with pytest.raises(QualityGateFailed) as err:
        _run("2026-07-01")
    (failed,) = err.value.failed
    assert failed.offending_rows == 3


def test_one_ad_purpose_is_not_ad_consent(marts):
    # c1 has ad_user_data but not ad_personalization, and no email consent
    _sql(
        marts,
        "update marts.dim_contact_consent set is_granted = true "
        "where contact_id = 'c1' and purpose = 'ad_user_data'",
        "insert into audiences.aud_sales_ready values ('c1')",
    )
    with pytest.raises(QualityGateFailed) as err:
        _run("2026-07-01")
    (failed,) = err.value.failed
    assert failed.offending_rows == 1
    _sql(
        marts,
        "update marts.dim_contact_consent set is_granted = true where contact_id = 'c1'",
    )
    assert _run("2026-07-01", "again")["fail"] == 0


def test_crm_writeback_is_not_judged_on_marketing_consent(marts):
    # every contact goes back to the CRM, consent or not; the same rows in a marketing
    # audience would fail (see the test above)
    _sql(
        marts,
        """create table audiences.aud_hubspot_writeback as
                   select contact_id, lifecycle_stage from marts.dim_contacts""",
    )
    out = _run("2026-07-01")
    assert out["fail"] == 0
    _sql(marts, "create table audiences.aud_vip as select contact_id from marts.dim_contacts")
    with pytest.raises(QualityGateFailed) as err:
        _run("2026-07-01")
    (failed,) = err.value.failed
    assert failed.offending_rows == sum(1 for i in range(len(STAGES)) if i % 2 != 0 and i % 3 != 0)


def test_scores_out_of_range_and_two_current_stages_fail(marts):
    _sql(
        marts,
        "update marts.dim_contacts set lead_score = 120 where contact_id in ('c1','c2')",
        "insert into marts.fct_lifecycle_stage_history values ('c3', 'lead', true)",
    )
    with pytest.raises(QualityGateFailed) as err:
        _run("2026-07-01")
    got = {r.check: r.offending_rows for r in err.value.failed}
    assert got == {
        "dim_contacts.expect_column_values_to_be_between(lead_score)": 2,
        "current_stages_per_contact.expect_column_values_to_be_between(current_stages)": 1,
    }


def test_stage_shift_and_audience_size_against_the_previous_night_warn(marts, data_dir):
    _run("2026-06-30", "night1")
    # the next night: 30 subscribers became leads (a 0.30 shift), the audience lost half+
    _sql(
        marts,
        """update marts.dim_contacts set lifecycle_stage = 'lead'
                   where contact_id in (select contact_id from marts.dim_contacts
                   where lifecycle_stage = 'subscriber' order by contact_id limit 30)""",
        "delete from audiences.aud_sales_ready where contact_id in "
        "(select contact_id from audiences.aud_sales_ready order by contact_id limit 8)",
    )
    out = _run("2026-07-01", "night2")  # warnings do not raise
    assert out["fail"] == 0 and out["warn"] == 2
    con = duckdb.connect(str(marts), read_only=True)
    rows = dict(
        con.execute(
            "select check_name, observed from ops.quality_results "
            "where run_id = 'night2' and status = 'warn'"
        ).fetchall()
    )
    con.close()
    assert set(rows) == {
        "stage_distribution.expect_column_values_to_be_between(shift)",
        "audience_sizes.expect_column_values_to_be_between(change)",
    }
    assert (
        '"previous_night": "2026-06-30"'
        in rows["stage_distribution.expect_column_values_to_be_between(shift)"]
    )
    # two stages moved by 0.30 each (subscriber down, lead up)
    assert (
        '"unexpected_count": 2'
        in rows["stage_distribution.expect_column_values_to_be_between(shift)"]
    )


def test_a_failed_night_does_not_become_tomorrows_baseline(marts):
    _sql(marts, "update marts.dim_contacts set lead_score = -5 where contact_id = 'c7'")
    with pytest.raises(QualityGateFailed):
        _run("2026-06-30", "bad")
    con = duckdb.connect(str(marts), read_only=True)
    kept = con.execute("select count(*) from ops.quality_metrics").fetchone()[0]
    con.close()
    assert kept == 0
    _sql(marts, "update marts.dim_contacts set lead_score = 7 where contact_id = 'c7'")
    assert _run("2026-07-01", "good")["fail"] == 0
    con = duckdb.connect(str(marts), read_only=True)
    nights = con.execute("select distinct night::varchar from ops.quality_metrics").fetchall()
    con.close()
    assert nights == [("2026-07-01",)]
