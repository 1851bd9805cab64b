"""The noise profiles: documented, validated, applied at the rates they name, truth hidden."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lifecycle.sandbox.noise import NoiseProfileError, load_profile, profile_names
from lifecycle.sandbox.world import DAY, WorldConfig, simulate

N = 4000


@pytest.fixture(scope="module")
def realistic():
    return simulate(WorldConfig(contacts=N, seed=17, profile="realistic"))


@pytest.fixture(scope="module")
def clean():
    return simulate(WorldConfig(contacts=N, seed=17, profile="clean"))


def test_the_profile_file_has_clean_and_realistic_with_the_issues_shares():
    assert {"clean", "realistic"} <= set(profile_names())
    p = load_profile("realistic")
    assert (p.crm.dates_missing, p.crm.dates_late, p.crm.dates_wrong, p.crm.stage_stale) == (
        0.40,
        0.30,
        0.05,
        0.10,
    )
    assert p.crm.late_days == (1.0, 21.0) and p.crm.duplicates == 0.03
    assert (p.orders.deal_only, p.orders.web_only) == (0.10, 0.10)
    assert (p.intent_pages.never_converters_visiting, p.intent_pages.converters_skipping) == (
        0.30,
        0.35,
    )
    assert (p.identity.second_device, p.identity.email_change) == (0.25, 0.05)
    assert p.identity.shared_role_address == 0.02 and p.bots.web_event_share == 0.03
    assert p.email.machine_open_recipients == 0.35


def test_a_bad_profile_is_refused_with_the_key_and_the_file(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("profiles:\n  x:\n    crm: {dates_missing: 1.5}\n")
    with pytest.raises(NoiseProfileError, match=r"x\.crm\.dates_missing = 1\.5"):
        load_profile("x", path)
    path.write_text("profiles:\n  x:\n    crm: {dates_mising: 0.1}\n")
    with pytest.raises(NoiseProfileError, match="unknown keys"):
        load_profile("x", path)
    path.write_text("profiles:\n  x:\n    crm: {dates_missing: 0.6, dates_late: 0.6}\n")
    with pytest.raises(NoiseProfileError, match="> 1"):
        load_profile("x", path)
    with pytest.raises(NoiseProfileError, match="unknown noise profile 'nope'"):
        load_profile("nope", path)


def test_the_profile_changes_the_record_never_the_journey(realistic, clean):
    journey = ["subscriber_at", "lead_at", "sql_at", "opportunity_at", "customer_at", "advocate_at"]
    pd.testing.assert_frame_equal(realistic.contacts[journey], clean.contacts[journey])
    pd.testing.assert_frame_equal(
        realistic.orders[["person", "order_n", "ordered_at", "revenue_usd"]],
        clean.orders[["person", "order_n", "ordered_at", "revenue_usd"]],
    )
    assert set(clean.noise.kind) <= {"second_device", "second_device_identifies"}


def _share(mask) -> float:
    return float(np.mean(mask))


def test_crm_noise_is_applied_at_the_profiles_rates(realistic):
    crm = realistic.crm[~realistic.crm.is_duplicate]
    kind = crm.crm_kind.to_numpy()
    assert _share(kind == "missing") == pytest.approx(0.40, abs=0.02)
    assert _share(kind == "late") == pytest.approx(0.30, abs=0.02)
    assert _share(np.isin(kind, ["wrong_phantom", "wrong_skipped"])) == pytest.approx(
        0.05, abs=0.01
    )
    assert _share(kind == "stale") == pytest.approx(0.10, abs=0.015)
    assert realistic.crm.is_duplicate.sum() / len(crm) == pytest.approx(0.03, abs=0.01)
    c = realistic.contacts.set_index("hubspot_id").reindex(crm.hubspot_id)
    # late: every date 1 to 21 days after the truth; missing: no date at all
    late = crm[kind == "late"]
    t = c.loc[late.hubspot_id, "lead_at"].to_numpy()
    d = (late.crm_lead_at.to_numpy() - t) / DAY
    d = d[~np.isnan(d)]
    assert len(d) > 100 and d.min() >= 1 and d.max() <= 21
    missing = crm[kind == "missing"]
    assert missing.filter(like="crm_").drop(columns="crm_kind").isna().all().all()
    # a phantom is a stage the person never reached
    ph = realistic.noise[realistic.noise.kind == "crm_wrong_phantom"]
    for person, stage in zip(ph.person, ph.stage, strict=True):
        assert np.isnan(realistic.contacts[f"{stage}_at"].iat[person])


def test_orders_reach_one_system_or_both_at_the_profiles_rates(realistic):
    rec = realistic.orders.recorded_in
    assert _share(rec == "deal") == pytest.approx(0.10, abs=0.02)
    assert _share(rec == "web") == pytest.approx(0.10, abs=0.02)
    web = set(realistic.events.order_id.dropna())
    assert not set(realistic.orders.order_id[rec == "deal"]) & web
    assert set(realistic.orders.order_id[rec != "deal"]) <= web
    won = set(realistic.deals.order_id.dropna())
    assert not set(realistic.orders.order_id[rec == "web"]) & won


def test_intent_pages_are_seen_by_never_converters_and_skipped_by_converters(realistic):
    e = realistic.events
    pv = e[(e.type == "page").to_numpy() & (e.person >= 0).to_numpy()]
    intent = pv[pv.path.isin(["/pricing", "/demo"]).to_numpy()]
    saw = np.zeros(len(realistic.contacts), dtype=bool)
    saw[intent.person.unique()] = True
    converted = realistic.contacts.customer_at.notna().to_numpy()
    assert _share(saw[~converted]) == pytest.approx(0.30, abs=0.03)
    assert _share(~saw[converted]) == pytest.approx(0.35, abs=0.05)


def test_identity_noise_is_applied_at_the_profiles_rates(realistic):
    c = realistic.contacts[realistic.contacts.is_known]
    assert _share(c.anonymous_id_2.notna()) == pytest.approx(0.25, abs=0.02)
    two = c[c.anonymous_id_2.notna()]
    assert _share(two.second_device_identifies) == pytest.approx(0.4, abs=0.05)
    assert _share(c.email_changed_at.notna()) == pytest.approx(0.05, abs=0.01)
    assert _share(c.role_email.notna()) == pytest.approx(0.02, abs=0.01)
    # the click-throughs of the second device carry Mailchimp's mc_eid
    e = realistic.events
    land = e[e.detail.fillna("").str.contains("mc_eid=").to_numpy() & (e.device == 2).to_numpy()]
    ue = dict(zip(c.person, c.unique_email_id, strict=True))
    assert len(land) > 100
    assert all(d.endswith(f"mc_eid={ue[p]}") for d, p in zip(land.detail, land.person, strict=True))


def test_bots_make_three_percent_of_web_events_with_crawler_agents(realistic):
    from lifecycle.sandbox.world import UA_CRAWLER, USER_AGENTS

    e = realistic.events
    bots = e.person.to_numpy() < 0
    assert _share(bots) == pytest.approx(0.03, abs=0.003)
    assert (e.ua.to_numpy()[bots] >= UA_CRAWLER).all() and (
        e.ua.to_numpy()[~bots] < UA_CRAWLER
    ).all()
    assert all(
        ("bot" in a.lower() or "headless" in a.lower() or "python" in a)
        for a in USER_AGENTS[UA_CRAWLER:]
    )


def test_privacy_proxies_open_for_35_percent_of_recipients_minutes_to_hours_after_delivery(
    realistic,
):
    from lifecycle.sandbox.world import IP_PROXY, IP_RELAY

    a = realistic.email_activity
    opens = a[a.action == "open"]
    machine = opens[opens.is_machine]
    recipients = a.person.unique()
    openers = machine.person.unique()
    assert len(openers) / len(recipients) == pytest.approx(0.35, abs=0.03)
    sent = realistic.campaigns.set_index("campaign_id").send_time.reindex(machine.campaign_id)
    delay_min = (machine.ts.to_numpy() - sent.to_numpy()) / 60
    assert np.median(delay_min) == pytest.approx(20, rel=0.15)
    assert np.quantile(delay_min, 0.05) > 2 and np.quantile(delay_min, 0.95) < 24 * 60
    assert set(machine.ip_kind) == {IP_PROXY, IP_RELAY}
    # independent of interest: proxy users are as engaged as everyone
    eng = realistic.contacts.eng_z.to_numpy()
    assert eng[openers].mean() == pytest.approx(eng[recipients].mean(), abs=0.1)


def test_no_vendor_payload_carries_the_truth(realistic):
    """What the emulators serve never names a truth column nor holds a true stage time
    of a contact whose CRM dates are late or missing."""
    from lifecycle.sandbox.common import iso
    from lifecycle.sandbox.hubspot import records as hs
    from lifecycle.sandbox.mailchimp import records as mc

    w, now = realistic, realistic.now_ts
    payloads = {
        "contacts": hs.contacts(w, now),
        "deals": hs.deals(w, now),
        "members": mc.members(w, now),
    }
    text = json.dumps(payloads)
    for name in ("fit_z", "eng_z", "is_known", "customer_at", "is_machine", "person"):
        assert name not in text, name
    crm = w.crm[~w.crm.is_duplicate & w.crm.crm_kind.isin(["late", "missing"]).to_numpy()]
    true_lead = {
        iso(t)
        for t in w.contacts.set_index("hubspot_id").reindex(crm.hubspot_id).lead_at.dropna()
        if t < now
    }
    served = {
        r["properties"].get("hs_lifecyclestage_lead_date")
        for r in payloads["contacts"]
        if r["id"] in set(crm.hubspot_id)
    }
    assert true_lead and not true_lead & served


def test_mql_truth_is_the_seed_rules_on_true_events():
    """A hand-checked person: fit 0 and one rule of 40 points with a 10-day half-life
    (threshold 45): two hits on day 0 cross (80 >= 45), decaying below by day 4."""
    from lifecycle.sandbox.truth_score import ScoreRules, first_crossings

    rules = ScoreRules(
        fit_rules=[],
        fit_caps={},
        engagement_rules=[
            {
                "signal": "x",
                "rule_group": "g",
                "points": "40",
                "half_life_days": "10",
                "max_points": "100",
            }
        ],
        engagement_caps={"g": 100},
        key_pages=[],
        lead_forms=frozenset(),
        threshold=45,
    )
    t0 = 1_700_000_000 - 1_700_000_000 % DAY
    person = np.array([0, 0, 1, 1])
    # person 0: one hit at 10:00, one at 18:00 on day 0 -> crosses at 18:00 (80 * 0.5^(x))
    # person 1: one hit on day 0, one 20 days later: 40 + 40 * 0.25 = 50 at day 20's end
    ts = np.array([t0 + 10 * 3600, t0 + 18 * 3600, t0 + 3600, t0 + 20 * DAY + 3600])
    got = first_crossings(rules, np.zeros(2), person, ts, np.array(["x"] * 4, dtype=object))
    assert got[0] == t0 + 18 * 3600
    # day 0's end: 40 * 0.5^(23/240) = 37.4 < 45; day 20's end: 9.4 + 37.4 = 46.8
    assert got[1] == t0 + 20 * DAY + 3600
