"""Issue 10, finding 4: a subscribed Mailchimp member is at least a subscriber.

The CRM often has no subscriber date (imported contacts, portals that never maintained
the stage dates). The model must still put a subscribed list member, or a contact who
identified on the website with their email, at ``subscriber`` or beyond, never at
``awareness``.
"""

from __future__ import annotations

import duckdb
import pytest
from sources_support import ingest_world
from test_dbt_model import dbt

from lifecycle.sandbox.world import WorldConfig

STAGE_DATES = [
    "hs_lifecyclestage_subscriber_date",
    "hs_lifecyclestage_lead_date",
    "hs_lifecyclestage_marketingqualifiedlead_date",
    "hs_lifecyclestage_salesqualifiedlead_date",
    "hs_lifecyclestage_opportunity_date",
    "hs_lifecyclestage_customer_date",
    "hs_lifecyclestage_evangelist_date",
]


@pytest.fixture(scope="module")
def without_crm_dates(tmp_path_factory):
    """A small world whose CRM lost every lifecycle stage date after ingestion."""
    data = tmp_path_factory.mktemp("subscriber_evidence")
    ingest_world(data, WorldConfig(contacts=200, seed=5))
    warehouse = data / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    try:
        cols = {r[0] for r in con.execute("describe raw_hubspot.contacts").fetchall()}
        sets = ", ".join(f"{c} = null" for c in STAGE_DATES if c in cols)
        con.execute(f"update raw_hubspot.contacts set {sets}")
    finally:
        con.close()
    dbt(warehouse, "seed")
    dbt(warehouse, "run", "-s", "+dim_contacts")
    return warehouse


def test_a_subscribed_member_without_a_crm_date_is_at_least_subscriber(without_crm_dates):
    con = duckdb.connect(str(without_crm_dates), read_only=True)
    try:
        rows = con.execute(
            """
            select contacts.contact_id, contacts.lifecycle_stage
            from marts.dim_contacts as contacts
            inner join staging.stg_mailchimp__members as members
                on members.email = contacts.email
            where members.email_status = 'subscribed'
            """
        ).fetchall()
    finally:
        con.close()
    assert len(rows) > 50
    assert [r for r in rows if r[1] == "awareness"] == []


def test_a_contact_who_identified_with_email_is_at_least_subscriber(without_crm_dates):
    con = duckdb.connect(str(without_crm_dates), read_only=True)
    try:
        rows = con.execute(
            """
            select contacts.contact_id, contacts.lifecycle_stage
            from marts.dim_contacts as contacts
            where exists (
                select 1 from intermediate.int_events_attributed as events
                where events.contact_id = contacts.contact_id
                  and events.event_type = 'identify' and events.email is not null
            )
            """
        ).fetchall()
    finally:
        con.close()
    assert len(rows) > 50
    assert [r for r in rows if r[1] == "awareness"] == []
