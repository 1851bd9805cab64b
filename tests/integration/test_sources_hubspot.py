"""HubSpot connector against the emulator's contract: paging, search cap, incremental."""

from __future__ import annotations

import time

import pytest
from sources_support import counts, query, set_clock, set_limits, stats, tune_connection

from lifecycle.httpclient import ApiError
from lifecycle.sandbox.expected import expected_counts
from lifecycle.sandbox.hubspot import records as hubspot_records
from lifecycle.sandbox.world import DAY
from lifecycle.sources.hubspot import CONTACT_PROPERTIES, client, list_objects, search_objects
from lifecycle.tasks import ingest


def test_list_pages_follow_the_after_cursor_and_limit_is_enforced(sandbox):
    api = client()
    pages = list(list_objects(api, "contacts", ["email"]))
    ids = [r["id"] for p in pages for r in p]
    world = sandbox.world
    served = hubspot_records.contacts(world, world.now_ts)
    assert len(pages) == -(-len(served) // 100)  # ceil: 100 per page
    assert sorted(ids) == sorted(r["id"] for r in served)
    assert all(set(r["properties"]) == {"email"} for p in pages for r in p)
    with pytest.raises(ApiError, match="limit must be <= 100"):
        api.json("GET", "crm/v3/objects/contacts", params={"limit": 101})


def test_search_beyond_the_cap_answers_400_and_the_connector_slides_past_it(sandbox, monkeypatch):
    set_limits(sandbox, hubspot_search_cap=100)
    tune_connection(monkeypatch, "hubspot_default", search_cap=100)
    api = client()
    body = {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": "0"}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "limit": 100,
        "after": "100",
    }
    with pytest.raises(ApiError, match="HTTP 400.*limited to 100"):
        api.json("POST", "crm/v3/objects/contacts/search", json=body)

    world = sandbox.world
    served = hubspot_records.contacts(world, world.now_ts)
    assert len(served) > 250, "the world must hold several windows of contacts"
    got = [
        r
        for page in search_objects(
            client(), "contacts", CONTACT_PROPERTIES, "2000-01-01T00:00:00Z", cap=100
        )
        for r in page
    ]
    ids = [r["id"] for r in got]
    assert len(ids) == len(set(ids)) == len(served)
    mods = [r["properties"]["lastmodifieddate"] for r in got]
    assert mods == sorted(mods)

    before = stats(sandbox).get("hubspot_search_cap_400", 0)
    loaded = ingest("hubspot")
    assert loaded["contacts"] == len(served)
    assert counts(["hubspot_contacts", "hubspot_deals", "hubspot_companies"]) == {
        k: v for k, v in expected_counts(world, world.now_ts).items() if k.startswith("hubspot")
    }
    assert stats(sandbox).get("hubspot_search_cap_400", 0) == before, "crossed the cap"


def test_incremental_run_pulls_only_what_changed_and_updates_it(sandbox):
    world = sandbox.world
    earlier = world.now_ts - 45 * DAY
    set_clock(sandbox, earlier)
    first = ingest("hubspot")
    assert first["contacts"] == expected_counts(world, earlier)["hubspot_contacts"]

    set_clock(sandbox, world.now_ts)
    old = hubspot_records.contacts(world, earlier)
    new = hubspot_records.contacts(world, world.now_ts)
    cursor = max(r["properties"]["lastmodifieddate"] for r in old)
    changed = [r for r in new if r["properties"]["lastmodifieddate"] >= cursor]
    assert 0 < len(changed) < len(new)
    second = ingest("hubspot")
    # GTE the cursor: the changes, plus the records modified exactly at the cursor again
    assert second["contacts"] == len(changed)
    assert counts(["hubspot_contacts"])["hubspot_contacts"] == len(new)
    stages = dict(query("select id, lifecyclestage from raw_hubspot.contacts"))
    assert stages == {r["id"]: r["properties"]["lifecyclestage"] for r in new}

    third = ingest("hubspot")
    assert third.get("contacts", 0) <= 1  # only the record(s) at the cursor instant


def test_deals_carry_their_contact_and_company_associations(sandbox):
    ingest("hubspot")
    world = sandbox.world
    deals = world.deals[world.deals.createdate < world.now_ts]
    company_of = dict(zip(world.contacts.hubspot_id, world.contacts.company_id, strict=True))
    expected = {
        d: (c, company_of[c]) for d, c in zip(deals.deal_id, deals.hubspot_contact_id, strict=True)
    }
    got = {
        r[0]: (r[1], r[2])
        for r in query("select id, contact_id, company_id from raw_hubspot.deals")
    }
    assert got == expected and len(got) > 0


def test_rate_limit_headers_429_over_the_limit_and_the_connector_stays_under_it(sandbox):
    import requests

    from lifecycle.sandbox.state import HUBSPOT_TOKEN

    set_limits(sandbox, hubspot_search_per_s=2)
    url = f"{sandbox.base_url}/hubspot/crm/v3/objects/contacts/search"
    auth = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}
    answers = [requests.post(url, json={"limit": 1}, headers=auth, timeout=5) for _ in range(4)]
    assert [r.status_code for r in answers[:2]] == [200, 200]
    assert answers[2].status_code == 429 and answers[2].json()["category"] == "RATE_LIMITS"
    first = answers[0].headers
    assert first["X-HubSpot-RateLimit-Max"] == "2"
    assert first["X-HubSpot-RateLimit-Remaining"] == "1"
    assert first["X-HubSpot-RateLimit-Interval-Milliseconds"] == "1000"
    assert requests.post(url, json={}, timeout=5).status_code == 401

    time.sleep(1.1)  # let the window this test used up expire
    before = stats(sandbox).get("hubspot_429", 0)
    ingest("hubspot")
    assert stats(sandbox).get("hubspot_429", 0) == before, "the connector hit the rate limit"
    assert counts(["hubspot_contacts"])["hubspot_contacts"] == len(
        hubspot_records.contacts(sandbox.world, sandbox.world.now_ts)
    )
