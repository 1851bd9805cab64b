"""Mailchimp connector against the emulator's documented shapes (issue 10 items 1, 4).

What a real account does: two lists, imported members whose ``timestamp_signup`` is
``""``, a list whose members have no ``timestamp_signup`` at all, opaque marketing
permission ids that differ per list with the account's own texts, archived members,
an unknown list answering 404, partial responses with ``fields``.
"""

from __future__ import annotations

import re

import pytest
from sources_support import counts, query

from lifecycle.httpclient import ApiError
from lifecycle.sandbox.accounts import AD_PERMISSION_TEXT
from lifecycle.sandbox.expected import expected_counts
from lifecycle.sources.mailchimp import client, find_removed_members, lists, paged
from lifecycle.tasks import ingest

OPAQUE = re.compile(r"^[0-9a-f]{10}$")


def members_of(api, list_id: str, **params) -> list[dict]:
    return [m for page in paged(api, f"lists/{list_id}/members", "members", params) for m in page]


def test_lists_members_and_permissions_have_the_shapes_real_accounts_have(sandbox):
    api, extra = client()
    found = lists(api, extra)
    assert len(found) == 2
    by_id = {x["id"]: members_of(api, x["id"]) for x in found}
    main, second = (by_id[x["id"]] for x in found)
    # imported members: timestamp_signup is "" (and timestamp_opt the import time)
    imported = [m for m in main if m["timestamp_signup"] == ""]
    assert imported and all(m["timestamp_opt"] for m in imported)
    assert any(m["timestamp_signup"] for m in main), "form sign-ups have a sign-up time"
    # the second list never sets timestamp_signup
    assert second and all("timestamp_signup" not in m for m in second)
    assert {m["status"] for m in main} >= {"subscribed", "unsubscribed", "archived"}
    # permission ids: opaque, per list; texts: the account's own
    ids_by_list = {
        list_id: {p["text"]: p["marketing_permission_id"] for p in ms[0]["marketing_permissions"]}
        for list_id, ms in by_id.items()
    }
    ad_ids = {perms[AD_PERMISSION_TEXT] for perms in ids_by_list.values()}
    assert len(ad_ids) == 2 and all(OPAQUE.match(i) for i in ad_ids)
    texts = [set(perms) for perms in ids_by_list.values()]
    assert texts[0] != texts[1], "each list has its own GDPR fields"
    with pytest.raises(ApiError, match="HTTP 404.*Resource Not Found"):
        api.json("GET", "lists/nosuchlist/members")


def test_partial_response_and_status_filter(sandbox):
    api, _ = client()
    body = api.json(
        "GET",
        "lists/lst0001/members",
        params={"fields": "members.id,total_items", "count": 5},
    )
    assert set(body) == {"members", "total_items"}
    assert all(set(m) == {"id"} for m in body["members"]) and len(body["members"]) == 5
    archived = api.json("GET", "lists/lst0001/members", params={"status": "archived"})
    assert archived["members"] and {m["status"] for m in archived["members"]} == {"archived"}


def test_every_list_lands_keyed_per_list_with_permissions_as_data(sandbox):
    loaded = ingest("mailchimp")
    world = sandbox.world
    want = expected_counts(world, world.now_ts)["mailchimp_members"]
    assert counts(["mailchimp_members"])["mailchimp_members"] == want == loaded["members"]
    n, keys, lists_n, both = query(
        "select count(*), count(distinct list_id || id), count(distinct list_id), "
        "(select count(*) from (select id from raw_mailchimp.members group by id "
        "having count(*) > 1)) from raw_mailchimp.members"
    )[0]
    assert n == keys and lists_n == 2 and both > 0, "an address on two lists is two members"
    perms = query(
        "select list_id, marketing_permission_id, text, count(*) "
        "from raw_mailchimp.member_permissions group by all order by 1, 3"
    )
    assert {r[2] for r in perms} >= {AD_PERMISSION_TEXT, "Email", "Direct Mail"}
    assert len({r[1] for r in perms if r[2] == AD_PERMISSION_TEXT}) == 2
    names = dict(query("select id, name from raw_mailchimp.lists"))
    assert set(names.values()) == {"Newsletter", "Product updates"}
    # the id listing erasure detection uses: every member of every list, archived too
    present = find_removed_members()
    ids = [x for v in present.values() for x in v if not x.startswith("ueid:")]
    ueids = [x for v in present.values() for x in v if x.startswith("ueid:")]
    assert len(ids) == want and len(ueids) == want


def test_presence_check_every_lists_members_on_every_nth_run_only(sandbox, monkeypatch):
    """``presence_check_every: 2``: the member listing that finds deleted members runs on
    the first detection and every second one after; the runs between record no sweep."""
    from sources_support import tune_connection

    from lifecycle import httpclient

    tune_connection(monkeypatch, "mailchimp_default", presence_check_every=2)
    calls: list[dict] = []
    request = httpclient.ApiClient.request

    def recorded(self, method, path, **kwargs):
        calls.append(dict(kwargs.get("params") or {}))
        return request(self, method, path, **kwargs)

    monkeypatch.setattr(httpclient.ApiClient, "request", recorded)
    listings = []
    for _ in range(3):
        calls.clear()
        ingest("mailchimp")
        listings.append(
            sum(c.get("fields") == "members.id,members.unique_email_id,total_items" for c in calls)
        )
    assert [n > 0 for n in listings] == [True, False, True]
    rows = query(
        "select swept, ids > 0 from ops.erasure_presence_checks "
        "where source = 'mailchimp' order by checked_at"
    )
    assert rows == [(True, True), (False, None), (True, True)]
