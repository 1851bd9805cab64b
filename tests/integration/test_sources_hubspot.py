"""HubSpot connector against the emulator's contract: paging, search cap, incremental."""

from __future__ import annotations

import time

import pytest
from sources_support import counts, query, set_clock, set_limits, stats, tune_connection

from lifecycle.httpclient import ApiError
from lifecycle.sandbox.expected import expected_counts
from lifecycle.sandbox.hubspot import records as hubspot_records
from lifecycle.sandbox.world import DAY
from lifecycle.sources.hubspot import (
    CONTACT_PROPERTIES,
    add_associations,
    client,
    list_objects,
    search_objects,
)
from lifecycle.tasks import ingest


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """Every request the connector makes, as (method, path, params, json body)."""
    from lifecycle import httpclient

    calls: list[tuple] = []
    request = httpclient.ApiClient.request

    def recorded(self, method, path, **kwargs):
        calls.append((method, path, dict(kwargs.get("params") or {}), kwargs.get("json")))
        return request(self, method, path, **kwargs)

    monkeypatch.setattr(httpclient.ApiClient, "request", recorded)
    return calls


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
    searched = stats(sandbox).get("hubspot_search_requests", 0)
    first = ingest("hubspot")
    assert first["contacts"] == expected_counts(world, earlier)["hubspot_contacts"]
    # a first load pages the list endpoint: not one search (4 requests/s) request
    assert stats(sandbox).get("hubspot_search_requests", 0) == searched

    set_clock(sandbox, world.now_ts)
    old = hubspot_records.contacts(world, earlier)
    new = hubspot_records.contacts(world, world.now_ts)
    cursor = max(r["properties"]["lastmodifieddate"] for r in old)
    changed = [r for r in new if r["properties"]["lastmodifieddate"] >= cursor]
    assert 0 < len(changed) < len(new)
    searched = stats(sandbox).get("hubspot_search_requests", 0)
    second = ingest("hubspot")
    # later nights search on the cursor (contacts, companies and deals: one query each)
    assert stats(sandbox).get("hubspot_search_requests", 0) >= searched + 3
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


def _search(body: dict):
    import requests

    from lifecycle.sandbox.state import HUBSPOT_TOKEN

    def post(url: str):
        return requests.post(
            url,
            json=body,
            headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
            timeout=10,
        )

    return post


def _eq(prop: str, value: str) -> dict:
    return {"propertyName": prop, "operator": "EQ", "value": value}


def test_search_takes_5_filter_groups_of_6_filters_18_in_all_and_400_beyond(sandbox):
    """HubSpot "CRM API | Search": filterGroups are ORed, filters in a group ANDed; at
    most 5 groups, 6 filters per group, 18 filters in all."""
    world = sandbox.world
    served = hubspot_records.contacts(world, world.now_ts)
    url = f"{sandbox.base_url}/hubspot/crm/v3/objects/contacts/search"
    picked = served[:5]
    groups = [
        {
            "filters": [
                _eq("email", r["properties"]["email"]),
                _eq("lifecyclestage", r["properties"]["lifecyclestage"]),
                {"propertyName": "createdate", "operator": "HAS_PROPERTY"},
            ]
        }
        for r in picked
    ]
    time.sleep(1.1)  # a fresh search-rate window
    ok = _search({"filterGroups": groups, "limit": 100})(url)
    assert ok.status_code == 200, ok.text
    assert {r["id"] for r in ok.json()["results"]} == {r["id"] for r in picked}
    # AND inside a group: a contradiction matches nobody
    none = _search(
        {"filterGroups": [{"filters": [groups[0]["filters"][0], _eq("lifecyclestage", "x")]}]}
    )(url)
    assert none.status_code == 200 and none.json()["results"] == []
    six = {"filters": [groups[0]["filters"][2]] * 6}
    time.sleep(1.1)
    too_many = {
        "6 groups": [groups[0]] * 6,
        "7 filters in a group": [{"filters": six["filters"] + [six["filters"][0]]}],
        "19 filters in all": [six, six, six, {"filters": [six["filters"][0]]}],
    }
    for what, bad in too_many.items():
        r = _search({"filterGroups": bad})(url)
        assert r.status_code == 400, what
        assert r.json()["category"] == "VALIDATION_ERROR", what
        time.sleep(0.3)
    assert _search({"filterGroups": [six, six, six]})(url).status_code == 200  # exactly 18


def test_archived_contacts_come_only_from_the_list_endpoint_with_archived_true(sandbox):
    """HubSpot "CRM API | Contacts": archived records are read with ``archived=true``;
    search never returns them."""
    api = client()
    archived = [
        r for page in list_objects(api, "contacts", ["email"]) for r in page if r.get("archived")
    ]
    assert archived == [], "the default list hides archived contacts"
    body = api.json(
        "GET",
        "crm/v3/objects/contacts",
        params={"archived": "true", "limit": 100, "properties": "email"},
    )
    gone = body["results"]
    world = sandbox.world
    assert gone, "the sandbox portal has archived contacts"
    assert all(r["archived"] is True and r.get("archivedAt") for r in gone)
    ids = {r["id"] for r in gone}
    searched = {
        r["id"]
        for page in search_objects(api, "contacts", ["email"], "2000-01-01T00:00:00Z")
        for r in page
    }
    assert not ids & searched
    time.sleep(1.1)
    by_email = api.json(
        "POST",
        "crm/v3/objects/contacts/search",
        json={"filterGroups": [{"filters": [_eq("email", gone[0]["properties"]["email"])]}]},
    )
    assert by_email["results"] == []
    assert len(searched) == len(hubspot_records.contacts(world, world.now_ts))


def test_v4_associations_carry_the_documented_type_ids_and_the_connector_uses_them(sandbox):
    """HubSpot "Associations v4": deal→contact 3, contact→deal 4, deal→company 5 (341
    for the primary), company→deal 6, contact→company 279 (1 primary), company→contact
    280 (2 primary). Deals naming a partner company list it first."""
    api = client()
    world = sandbox.world
    deals = world.deals[world.deals.createdate < world.now_ts]
    ids = [{"id": d} for d in deals.deal_id]

    def types(frm: str, to: str, inputs) -> list[set[int]]:
        res = api.json(
            "POST", f"crm/v4/associations/{frm}/{to}/batch/read", json={"inputs": inputs}
        )
        return [
            {t["typeId"] for t in link["associationTypes"]}
            for x in res["results"]
            for link in x["to"]
        ]

    assert set().union(*types("deals", "contacts", ids)) == {3}
    company_types = types("deals", "companies", ids)
    assert {frozenset(t) for t in company_types} == {frozenset({5}), frozenset({5, 341})}
    contact_ids = [{"id": c} for c in deals.hubspot_contact_id]
    assert set().union(*types("contacts", "deals", contact_ids)) == {4}
    assert {frozenset(t) for t in types("contacts", "companies", contact_ids)} == {
        frozenset({1, 279})
    }
    one = api.json(
        "GET",
        f"crm/v4/objects/companies/{world.contacts.company_id.iloc[0]}/associations/contacts",
    )
    assert {t["typeId"] for x in one["results"] for t in x["associationTypes"]} == {2, 280}
    partnered = [t for t in company_types if t == {5}]
    assert partnered, "some deals name a partner company besides the buyer's"
    ingest("hubspot")
    company_of = dict(zip(world.contacts.hubspot_id, world.contacts.company_id, strict=True))
    got = dict(query("select id, company_id from raw_hubspot.deals"))
    want = {d: company_of[c] for d, c in zip(deals.deal_id, deals.hubspot_contact_id, strict=True)}
    assert got == want


def test_unset_properties_are_absent_or_null_and_the_consent_checkbox_has_history(sandbox):
    world = sandbox.world
    served = hubspot_records.contacts(world, world.now_ts)
    absent = [r for r in served if "phone" not in r["properties"]]
    null = [r for r in served if "phone" in r["properties"] and r["properties"]["phone"] is None]
    assert absent and null, "both shapes of an unset property"
    values = {r["properties"].get("marketing_ads_consent") for r in served}
    assert values == {"true", "false", None}
    api = client()
    with_value = [r["id"] for r in served if r["properties"].get("marketing_ads_consent")][:50]
    res = api.json(
        "POST",
        "crm/v3/objects/contacts/batch/read",
        json={
            "inputs": [{"id": i} for i in with_value],
            "properties": ["marketing_ads_consent"],
            "propertiesWithHistory": ["marketing_ads_consent"],
        },
    )
    assert len(res["results"]) == len(with_value)
    for r in res["results"]:
        history = r["propertiesWithHistory"]["marketing_ads_consent"]
        assert history and history[0]["value"] == r["properties"]["marketing_ads_consent"]
        stamps = [h["timestamp"] for h in history]
        assert stamps == sorted(stamps, reverse=True), "newest first"
    with pytest.raises(ApiError, match="HTTP 400"):
        api.json(
            "POST",
            "crm/v3/objects/contacts/batch/read",
            json={
                "inputs": [{"id": r["id"]} for r in served[:51]],
                "propertiesWithHistory": ["marketing_ads_consent"],
            },
        )


def test_association_reads_fill_each_call_up_to_the_documented_1000_ids(sandbox):
    """HubSpot's changelog (Feb 2025): an associations batch read takes at most 1000 ids.
    A page of 2,345 deals costs three calls per target type, each deal keeps its links."""
    api = client()
    world = sandbox.world
    deals = world.deals[world.deals.createdate < world.now_ts]
    real = [{"id": str(d)} for d in deals.deal_id]
    # ids the portal does not have pad the page above the limit: they get no links
    page = real + [{"id": str(900_000_000 + i)} for i in range(2_345 - len(real))]
    assert len(page) == 2_345

    over = [{"id": r["id"]} for r in page[:1001]]
    with pytest.raises(ApiError, match="HTTP 400.*at most 1000"):
        api.json("POST", "crm/v4/associations/deals/contacts/batch/read", json={"inputs": over})

    before = api.stats["requests"]
    linked = add_associations(api, "deals", page, ["contacts", "companies"])
    assert api.stats["requests"] - before == 2 * 3
    contact_of = {
        str(d): str(c) for d, c in zip(deals.deal_id, deals.hubspot_contact_id, strict=True)
    }
    got = {r["id"]: r["associations"]["contacts"]["chosen"] for r in linked}
    assert {k: v for k, v in got.items() if k in contact_of} == contact_of
    assert all(got[r["id"]] is None for r in page[len(real) :])


def test_a_load_regroups_deal_pages_to_fill_each_association_call(sandbox, sent):
    loaded = ingest("hubspot")
    deals = loaded["deals"]
    calls = [len(c[3]["inputs"]) for c in sent if "associations/deals/" in c[1]]
    assert deals > 100, "the world must hold more than one list page of deals"
    # one call per target type (contacts, companies) for each 1,000 deals, not per page
    assert len(calls) == 2 * -(-deals // 1000)
    assert sum(calls) == 2 * deals


def test_a_full_load_takes_the_consent_history_from_its_list_pages(sandbox, sent):
    """With ``propertiesWithHistory`` a list page holds at most 50 records; a full load
    asks for the consent history there, so it makes no batch read per page."""
    api = client()
    prop = hubspot_records.HUBSPOT_CONSENT_PROPERTY
    with pytest.raises(ApiError, match="HTTP 400.*limit must be <= 50 with propertiesWithHistory"):
        api.json(
            "GET",
            "crm/v3/objects/contacts",
            params={"limit": 51, "propertiesWithHistory": prop},
        )
    sent.clear()
    loaded = ingest("hubspot")
    with_history = [
        c for c in sent if c[1] == "crm/v3/objects/contacts" and "propertiesWithHistory" in c[2]
    ]
    assert {c[2]["limit"] for c in with_history} == {50}
    assert len(with_history) == -(-loaded["contacts"] // 50)
    assert not [c for c in sent if c[1] == "crm/v3/objects/contacts/batch/read"]
    # every contact's consent value came with its change time from the history
    world = sandbox.world
    served = hubspot_records.consent_history(world, world.now_ts)
    got = dict(
        query(
            "select contact_id, changed_at from raw_hubspot.contact_consent "
            "where property = ? and changed_at is not null",
            [prop],
        )
    )
    current = {
        r["id"]: r["properties"].get(prop) for r in hubspot_records.contacts(world, world.now_ts)
    }
    want = {
        cid: versions[0]["timestamp"]
        for cid, versions in served.items()
        if cid in current and current[cid] == versions[0]["value"]
    }
    assert got == want and len(want) > 0


def test_after_a_full_load_removed_contacts_come_from_its_listing_not_a_second_pass(
    sandbox, sent, monkeypatch
):
    """The full load listed every contact already: detecting deletions reuses those ids
    (one pass over the portal, not two) and finds what a separate pass finds."""
    from lifecycle.sources import hubspot

    found = []
    find = hubspot.find_removed_contacts

    def kept(conn_id="hubspot_default", **kwargs):
        found.append(find(conn_id, **kwargs))
        return found[-1]

    monkeypatch.setattr(hubspot, "find_removed_contacts", kept)
    loaded = ingest("hubspot")
    active = [c for c in sent if c[1] == "crm/v3/objects/contacts" and "archived" not in c[2]]
    assert len(active) == -(-loaded["contacts"] // 50), "one pass: the load's own pages"
    assert len(found) == 1
    # the separate pass (nothing cached now) sees the same archived contacts and ids
    sent.clear()
    archived, present = find()
    assert any(c[2].get("properties") == "hs_object_id,hs_merged_object_ids" for c in sent)
    assert (archived, present) == found[0]
    assert len(present) > loaded["contacts"] > 0  # archived and merged ids count as present


def test_a_full_load_takes_deal_stage_history_from_its_list_pages(sandbox, sent):
    loaded = ingest("hubspot")
    listed = [c for c in sent if c[1] == "crm/v3/objects/deals"]
    assert {c[2].get("propertiesWithHistory") for c in listed} == {"dealstage"}
    assert len(listed) == -(-loaded["deals"] // 50)
    assert not [c for c in sent if c[1] == "crm/v3/objects/deals/batch/read"]
    # every version the portal keeps, one row each (the emulator's history is the oracle)
    world = sandbox.world
    served = hubspot_records.deal_stage_history(world, world.now_ts)
    deals = {r["id"] for r in hubspot_records.deals(world, world.now_ts)}
    want = sorted(
        (d, v["value"], v["timestamp"]) for d, vs in served.items() if d in deals for v in vs
    )
    got = sorted(
        (d, s, str(t))
        for d, s, t in query(
            "select deal_id, deal_stage, strftime(changed_at, '%Y-%m-%dT%H:%M:%S.%gZ') "
            "from raw_hubspot.deal_stage_history"
        )
    )
    assert got == want and len(want) > loaded["deals"]


def test_presence_check_every_lists_contact_ids_on_every_nth_run_only(sandbox, sent, monkeypatch):
    """With ``presence_check_every: 3`` the id listing (1 request per 100 contacts) runs
    on every third detection; archived contacts are read on every run; a contact the
    portal no longer has is recorded as deleted on the sweep, not on the nights between."""
    import duckdb

    from lifecycle.config import settings

    tune_connection(monkeypatch, "hubspot_default", presence_check_every=3)
    ingest("hubspot")  # full load: its own listing is the sweep
    con = duckdb.connect(str(settings().warehouse_path))
    con.execute(
        "insert into raw_hubspot.contacts select * replace ('990000001' as id, "
        "'gone-for-good@example.com' as email) from raw_hubspot.contacts limit 1"
    )
    con.close()

    def deleted() -> int:
        return query(
            "select count(*) from ops.erasures where origin = 'hubspot_deleted' "
            "and contact_id_sha256 = sha256('990000001')"
        )[0][0]

    listings, archived_reads, found = [], [], []
    for _ in range(4):
        sent.clear()
        ingest("hubspot")
        contacts = [c for c in sent if c[1] == "crm/v3/objects/contacts" and c[0] == "GET"]
        listings.append(
            sum(c[2].get("properties") == "hs_object_id,hs_merged_object_ids" for c in contacts)
        )
        archived_reads.append(sum(c[2].get("archived") == "true" for c in contacts))
        found.append(deleted())
    # runs: full load (swept), 2 and 3 not due, 4 due (two runs since), 5 not due
    assert query("select swept from ops.erasure_presence_checks order by checked_at") == [
        (True,),
        (False,),
        (False,),
        (True,),
        (False,),
    ]
    assert [n > 0 for n in listings] == [False, False, True, False]
    assert all(n > 0 for n in archived_reads)
    assert found == [0, 0, 1, 1]
