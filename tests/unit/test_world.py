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
    cols = ["subscriber_at", "lead_at", "mql_at", "sql_at", "opportunity_at", "customer_at"]
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

    from lifecycle.sandbox.vendors import segment_frame, write_segment_files

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
