"""Consent withdrawals: always removed, never counted toward ``max_removal_pct``.

The consent model (Contract A) is what says a contact withdrew; the audience table may
still list the contact (a stale where-clause) or not (the audience already excludes it).
"""

from __future__ import annotations

import duckdb
import pytest
import requests
from sync_support import audience_frame, membership, put, put_consent, received, store, sync

from lifecycle.activation.audiences import load
from lifecycle.activation.hashing import hashed

YML = """
audiences:
  ads:
    model: aud_ads
    identifiers: [email]
    guards: {max_removal_pct: 20}
    destinations:
      meta: {audience_id: "555", mode: mirror}
  ads_upsert:
    model: aud_ads
    identifiers: [email]
    guards: {max_removal_pct: 20}
    destinations:
      meta: {audience_id: "556", mode: upsert}
  mc:
    model: aud_ads
    identifiers: [email]
    guards: {max_removal_pct: 20}
    destinations:
      mailchimp: {list_id: lst0001, tag: consent_tag, mode: mirror}
"""


@pytest.fixture()
def wh(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    yield con
    con.close()


@pytest.fixture()
def specs(tmp_path):
    path = tmp_path / "audiences.yml"
    path.write_text(YML)
    return {s.audience: s for s in load(path)}


def grants(ids, withdrawn_ads=(), withdrawn_email=()) -> dict:
    return {
        str(i): {
            "email_marketing": str(i) not in withdrawn_email,
            "ad_user_data": True,
            "ad_personalization": str(i) not in withdrawn_ads,
        }
        for i in ids
    }


def meta_members(srv, audience_id: str) -> set[str]:
    got = requests.get(f"{srv.base_url}/_sandbox/received/meta", timeout=10).json()
    return {tuple(m)[0] for m in got["members"].get(audience_id, [])}


def emails(ids) -> set[str]:
    return {hashed("EMAIL", f"User.{i}@Example.com") for i in ids}


def test_a_wave_of_withdrawals_above_the_limit_is_still_removed(sandbox, wh, specs):
    spec = specs["ads"]
    ids = range(1, 41)
    put(wh, "aud_ads", audience_frame(ids))
    put_consent(wh, grants(ids))
    assert sync(wh, spec)["accepted"] == 40

    # 15 of 40 (37.5%, above the 20% guard) withdraw ad personalization; the audience
    # still lists 8 of them (stale) and already dropped the other 7
    withdrawn = [str(i) for i in range(1, 16)]
    put(wh, "aud_ads", audience_frame([i for i in ids if i not in range(9, 16)]))
    put_consent(
        wh,
        grants(ids, withdrawn_ads=withdrawn),
        withdrawn={(c, "ad_personalization") for c in withdrawn},
    )
    r = sync(wh, spec)
    assert r["status"] == "success", r["error"]
    assert (r["planned_removes"], r["consent_removes"], r["accepted"]) == (15, 15, 15)
    assert meta_members(sandbox, "555") == emails(range(16, 41))
    assert membership(wh, "meta") == emails(range(16, 41))
    causes = wh.execute(
        "select cause, count(*) from ops.sync_changes where change = 'remove' group by 1"
    ).fetchall()
    assert causes == [("consent", 15)]


def test_an_ordinary_removal_wave_above_the_limit_still_aborts(sandbox, wh, specs):
    spec = specs["ads"]
    ids = range(1, 41)
    put(wh, "aud_ads", audience_frame(ids))
    put_consent(wh, grants(ids))
    sync(wh, spec)
    calls = len(received(sandbox, "meta"))
    put(wh, "aud_ads", audience_frame(range(16, 41)))  # 15 leave, consent unchanged
    r = sync(wh, spec)
    assert r["status"] == "aborted"
    assert "would remove 15 of 40 members (37.5% > 20% allowed" in r["error"]
    assert len(received(sandbox, "meta")) == calls
    assert meta_members(sandbox, "555") == emails(ids)


def test_withdrawals_go_out_even_when_ordinary_removals_abort_the_rest(sandbox, wh, specs):
    spec = specs["ads"]
    ids = range(1, 41)
    put(wh, "aud_ads", audience_frame(ids))
    put_consent(wh, grants(ids))
    sync(wh, spec)
    # 3 withdraw (not counted) and 10 leave (25% > 20%): the 10 stay, the 3 go
    put(wh, "aud_ads", audience_frame(range(11, 41)))
    put_consent(wh, grants(ids, withdrawn_ads=["11", "12", "13"]))
    r = sync(wh, spec)
    assert r["status"] == "aborted"
    assert "would remove 10 of 40 members (25.0% > 20% allowed" in r["error"]
    assert "3 consent withdrawals are not counted" in r["error"]
    assert "the 3 consent withdrawals were still removed" in r["error"]
    assert meta_members(sandbox, "555") == emails(ids) - emails([11, 12, 13])


def test_withdrawals_are_removed_in_upsert_mode_too(sandbox, wh, specs):
    spec = specs["ads_upsert"]
    ids = range(1, 11)
    put(wh, "aud_ads", audience_frame(ids))
    put_consent(wh, grants(ids))
    sync(wh, spec)
    put(wh, "aud_ads", audience_frame(range(1, 9)))  # 9 and 10 leave: upsert keeps them
    put_consent(wh, grants(ids, withdrawn_ads=["2"]))
    r = sync(wh, spec)
    assert (r["status"], r["planned_removes"], r["consent_removes"]) == ("success", 1, 1)
    assert meta_members(sandbox, "556") == emails(ids) - emails([2])


def test_email_withdrawal_untags_and_unsubscribes_in_mailchimp(sandbox, wh, specs):
    spec = specs["mc"]
    ids = range(1, 11)
    put(wh, "aud_ads", audience_frame(ids))
    put_consent(wh, grants(ids))
    assert sync(wh, spec)["accepted"] == 10
    put_consent(wh, grants(ids, withdrawn_email=["4", "5"]))
    r = sync(wh, spec)
    assert (r["status"], r["consent_removes"], r["accepted"]) == ("success", 2, 2)
    mc = store(sandbox, "mailchimp")
    held = mc["lists"]["lst0001"]
    tag = next(s for s in mc["segments"]["lst0001"].values() if s["name"] == "consent_tag")
    gone = {"user.4@example.com", "user.5@example.com"}
    assert {held[h]["email_address"] for h in tag["members"]} == {
        f"user.{i}@example.com" for i in ids
    } - gone
    assert {m["status"] for m in held.values() if m["email_address"] in gone} == {"unsubscribed"}
    unsub = [
        m
        for c in received(sandbox, "mailchimp")
        if c["call"] == "batch_members"
        for m in c["body"]["members"]
        if m["status"] == "unsubscribed"
    ]
    assert {m["email_address"] for m in unsub} == gone
