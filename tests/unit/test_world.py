"""The simulator is deterministic, consistent with its vendors, and its truth is sane."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from lifecycle.sandbox.world import FORWARD_STAGES, WorldConfig, simulate, truth_table


def test_same_seed_same_world_other_seed_other_world():
    a = simulate(WorldConfig(contacts=200, seed=3))
    b = simulate(WorldConfig(contacts=200, seed=3))
    c = simulate(WorldConfig(contacts=200, seed=4))
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.contacts, b.contacts)
    assert not a.contacts.fit_z.equals(c.contacts.fit_z)


def test_stage_dates_move_forward():
    w = simulate(WorldConfig(contacts=1000, seed=5))
    c = w.contacts[w.contacts.is_known]
    # MQL is not a step of the journey: the lead score's crossing (tested apart)
    cols = ["subscriber_at", "lead_at", "sql_at", "opportunity_at", "customer_at"]
    for earlier, later in zip(cols, cols[1:], strict=False):
        both = c[earlier].notna() & c[later].notna()
        assert (c.loc[both, later] >= c.loc[both, earlier]).all(), (earlier, later)
        # nobody reaches a later stage without the earlier one
        assert not (c[later].notna() & c[earlier].isna()).any()


def test_orders_belong_to_customers_and_first_is_at_conversion():
    w = simulate(WorldConfig(contacts=1000, seed=5))
    first = w.orders[w.orders.order_n == 1].set_index("person").ordered_at
    conv = w.contacts.set_index("person").customer_at.reindex(first.index)
    assert np.allclose(first.to_numpy(), conv.to_numpy())


def test_truth_stages_are_known_and_fit_predicts_conversion():
    w = simulate(WorldConfig(contacts=3000, seed=9, now=date(2026, 7, 1)))
    t = truth_table(w)
    known = set(FORWARD_STAGES) | {"lapsed", "churned"}
    assert set(t.stage_at_now.dropna()) <= known
    c = w.contacts[w.contacts.is_known]
    converted = c.customer_at.notna()
    # the simulator makes good-fit contacts convert more: the signal the model must find
    assert c.fit_z[converted].mean() > c.fit_z[~converted].mean() + 0.3


def test_stage_history_gives_the_true_stage_on_any_day():
    from lifecycle.sandbox.world import DAY, stage_history, true_stage_at

    w = simulate(WorldConfig(contacts=800, seed=21))
    h = stage_history(w)
    assert h.groupby("person").valid_to.apply(lambda s: s.isna().sum()).eq(1).all()
    known = w.contacts.is_known.to_numpy()
    for day in range(0, 400, 13):
        ts = w.start_ts + day * DAY + 7 * 3600
        at = pd.Timestamp(ts, unit="s", tz="UTC")
        spell = h[(h.valid_from <= at) & (h.valid_to.isna() | (h.valid_to > at))]
        got = spell.set_index("person").stage
        truth = true_stage_at(w, ts)[known]
        assert got.index.is_unique
        assert got.reindex(truth.index).fillna("-").equals(truth.fillna("-")), day


def test_ids_are_unique_and_stable():
    from lifecycle.sandbox.world import _ids

    a = _ids("msg-", 200_000, 1)
    assert len(set(a)) == len(a)
    assert (a == _ids("msg-", 200_000, 1)).all()
    assert not (a == _ids("msg-", 200_000, 2)).any()
    assert all(len(x) == 20 and x.startswith("msg-") for x in a[:100])


def test_segment_files_hold_every_landed_event_once_in_the_spec_shape(tmp_path):
    import gzip
    import json

    from lifecycle.sandbox.segment.landing import segment_frame, write_segment_files

    w = simulate(WorldConfig(contacts=300, seed=8))
    days = write_segment_files(w, tmp_path, w.now_ts)
    lines = []
    for path in sorted((tmp_path / "web").glob("*/*.jsonl.gz")):
        with gzip.open(path, "rt") as fh:
            lines += [json.loads(x) for x in fh]
    frame = segment_frame(w, w.now_ts)
    assert sum(days.values()) == len(lines) == len(frame)
    assert sorted(e["messageId"] for e in lines) == sorted(frame.message_id)
    by_type = {e["type"]: e for e in lines}
    assert set(by_type) == {"page", "track", "identify"}
    assert "@" in by_type["identify"]["traits"]["email"]
    assert by_type["track"]["event"] and isinstance(by_type["track"]["properties"], dict)
    assert by_type["page"]["context"]["page"]["path"].startswith("/")
    orders = [e for e in lines if e.get("event") == "Order Completed"]
    assert orders and all(e["properties"]["revenue"] > 0 for e in orders)
    # a missing value is JSON null, never the string "NaN"
    anonymous = [e for e in lines if e["userId"] is None]
    assert anonymous and len(anonymous) == int(frame.user_id.isna().sum())
    assert not [e for e in lines if "NaN" in (e["userId"], e.get("event"))]
    assert not [e for e in lines if "NaN" in e["context"]["campaign"].values()]
    # a landing folder is append-only: a second call writes nothing new
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "web").glob("*/*.jsonl.gz")}
    write_segment_files(w, tmp_path, w.now_ts)
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "web").glob("*/*.jsonl.gz")}


def test_truth_command_writes_contacts_and_stage_history(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "truth"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lifecycle.cli",
            "sandbox",
            "truth",
            "--contacts",
            "300",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    contacts = pd.read_csv(out / "truth_contacts.csv")
    history = pd.read_csv(out / "truth_stage_history.csv")
    assert len(contacts) == 300
    assert set(history.hubspot_id) == set(contacts.hubspot_id)
    assert {"stage", "valid_from", "valid_to"} <= set(history.columns)


def test_a_world_of_many_blocks_is_one_consistent_world(monkeypatch):
    """Large worlds are simulated in blocks of people: ids never collide across blocks."""
    from lifecycle.sandbox import world as world_mod

    single = simulate(WorldConfig(contacts=1000, seed=11))
    monkeypatch.setattr(world_mod, "BLOCK_PEOPLE", 300)
    seen = []
    w = simulate(WorldConfig(contacts=1000, seed=11), progress=lambda d, t: seen.append((d, t)))
    # 1,300 people (1,000 known + 30% anonymous) in blocks of 300; the last is anonymous
    assert seen == [(300, 1300), (600, 1300), (900, 1300), (1200, 1300), (1300, 1300)]
    c = w.contacts
    assert c.person.tolist() == list(range(1300))
    assert c.is_known.sum() == 1000 and not c.is_known[1000:].any()
    for frame, col in [
        (c, "hubspot_id"),
        (c, "user_id"),
        (c, "anonymous_id"),
        (c, "email"),
        (w.orders, "order_id"),
        (w.deals, "deal_id"),
        (w.events, "message_id"),
    ]:
        assert frame[col].is_unique, col
    # same columns and types as a world drawn in one pass, even where a block has no
    # orders or identifies (the anonymous block)
    for name in ("contacts", "orders", "deals", "events", "email_activity"):
        assert getattr(w, name).dtypes.to_dict() == getattr(single, name).dtypes.to_dict()
    # every block's people act, and their rows point at the right person
    per_block = w.events.groupby(w.events.person // 300).size()
    assert len(per_block) == 5 and (per_block > 0).all()
    ident = w.events[w.events.type == "identify"]
    assert ident.person.max() < 1000  # anonymous visitors never identify
    anon = c.set_index("person").anonymous_id
    dev1 = w.events[w.events.anonymous_id.str.startswith("a1-")]
    assert (dev1.anonymous_id.to_numpy() == anon.reindex(dev1.person).to_numpy()).all()
    users = c.set_index("person").user_id
    assert (w.orders.user_id.to_numpy() == users.reindex(w.orders.person).to_numpy()).all()
    assert set(w.email_activity.person) <= set(c.person[c.is_known])
    assert (w.deals.hubspot_contact_id.to_numpy() == c.hubspot_id.to_numpy()[w.deals.person]).all()
    # blocks draw from their own streams: the same world each time, and a world like
    # the one-pass world (not a copy of its first block)
    again = simulate(WorldConfig(contacts=1000, seed=11))
    pd.testing.assert_frame_equal(w.events, again.events)
    assert not w.contacts.fit_z.equals(single.contacts.fit_z)
    ratio = len(w.events) / len(single.events)
    assert 0.85 < ratio < 1.15, ratio


def test_landing_in_chunks_writes_the_same_files(tmp_path, monkeypatch):
    """Large worlds land in chunks of files; the files are the same as in one go."""
    import gzip
    import json

    from lifecycle.sandbox.segment import landing

    w = simulate(WorldConfig(contacts=400, seed=8))

    def land(root, chunk):
        monkeypatch.setattr(landing, "LANDING_CHUNK_EVENTS", chunk)
        days = landing.write_segment_files(w, root, w.now_ts, anomalies=True)
        files = {
            str(p.relative_to(root)): gzip.decompress(p.read_bytes())
            for p in sorted(root.rglob("*.jsonl.gz"))
        }
        return days, files, json.loads((root / "web" / ".manifest.json").read_text())

    whole = land(tmp_path / "whole", 10_000_000)
    chunked = land(tmp_path / "chunked", 500)
    assert whole == chunked
    days, files, manifest = chunked
    assert len(files) > 300 and sum(days.values()) == sum(manifest.values())
    for name, body in files.items():
        stamps = [json.loads(line)["timestamp"] for line in body.splitlines()]
        assert stamps == sorted(stamps), name  # each batch file is in time order
    assert not list((tmp_path / "chunked" / "web").glob(".staging*"))


def test_mailchimp_activity_is_served_per_campaign_with_a_bounded_cache():
    """The emulator builds one campaign's activity at a time and keeps only a few."""
    from lifecycle.sandbox.mailchimp import records
    from lifecycle.sandbox.state import SandboxState

    w = simulate(WorldConfig(contacts=500, seed=6))
    whole = records.activity(w, w.now_ts)
    campaigns = sorted(whole)
    assert len(campaigns) > 10
    for cid in campaigns[:3]:
        assert records.activity(w, w.now_ts, cid) == {cid: whole[cid]}
    state = SandboxState(w)
    builds = []

    def build(cid):
        def _build(world, now):
            builds.append(cid)
            return records.activity(world, now, cid).get(cid, [])

        return _build

    def get(cid):
        return state.cached(f"mc:activity:{cid}", build(cid), group="mc:activity", keep=2)

    a, b, c = campaigns[:3]
    assert get(a) == whole[a] and get(b) == whole[b]
    assert get(a) == whole[a] and builds == [a, b]  # cached
    get(c)  # evicts b, the least recently used
    get(a)
    get(b)
    assert builds == [a, b, c, b]
