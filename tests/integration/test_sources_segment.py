"""Segment files: late files, duplicated files, appended days, bad lines, incremental."""

from __future__ import annotations

import gzip
import json
import logging

from sources_support import counts, quarantine, query

from lifecycle.sandbox.expected import expected_counts
from lifecycle.sandbox.segment.landing import write_segment_files
from lifecycle.sandbox.world import DAY, WorldConfig, simulate
from lifecycle.tasks import ingest


def _files(root):
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*.jsonl.gz")}


def test_late_duplicated_and_appended_files_land_exactly_once(data_dir, monkeypatch, caplog):
    # big enough that every day has late and appended events (about 2% each)
    world = simulate(WorldConfig(contacts=2000, seed=11))
    land = data_dir / "anomalies"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEGMENT_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": str(land), "source_id": "web"}}),
    )
    earlier = world.now_ts - 10 * DAY

    write_segment_files(world, land, earlier, anomalies=True)
    before = _files(land)
    ingest("segment")
    n1 = expected_counts(world, earlier, segment_anomalies=True)["segment_events"]
    assert counts(["segment_events"])["segment_events"] == n1

    write_segment_files(world, land, world.now_ts, anomalies=True)
    after = _files(land)
    changed = {k for k, size in after.items() if before.get(k) != size}
    old_days = {k.split("/")[1] for k in before}
    late = [k for k in changed - set(before) if k.endswith("batch-late.jsonl.gz")]
    late_old = [k for k in late if k.split("/")[1] in old_days]
    appended = [k for k in changed & set(before)]
    dups = [k for k in after if k.endswith("redelivered.jsonl.gz")]
    assert late_old, "a late file arrived for a day that was already loaded"
    assert appended, "events were appended to a file that was already loaded"
    assert dups, "a file was delivered twice"

    with caplog.at_level(logging.INFO):
        ingest("segment")
    assert f"segment: {len(changed)} new or changed files" in caplog.text
    n2 = expected_counts(world, world.now_ts, segment_anomalies=True)["segment_events"]
    assert n2 > n1
    n, distinct = query("select count(*), count(distinct message_id) from raw_segment.events")[0]
    assert n == distinct == n2
    # every landed line is accounted for: duplicates collapse onto their messageId
    ids = set()
    for path in land.rglob("*.jsonl.gz"):
        with gzip.open(path, "rt") as fh:
            ids.update(json.loads(line)["messageId"] for line in fh)
    assert len(ids) == n2

    caplog.clear()
    with caplog.at_level(logging.INFO):
        ingest("segment")
    assert "segment: 0 new or changed files" in caplog.text
    assert counts(["segment_events"])["segment_events"] == n2


def test_bad_lines_are_quarantined_and_new_fields_inside_objects_are_kept(sandbox, data_dir):
    land = data_dir / "landing" / "web" / "2026-06-30"
    good = {
        "type": "track",
        "messageId": "msg-drift",
        "anonymousId": "anon-x",
        "userId": None,
        "timestamp": "2026-06-30T10:00:00.000Z",
        "receivedAt": "2026-06-30T10:00:01.000Z",
        "event": "Trial Started",
        "properties": {"plan": "pro", "brand_new_field": 7},
        "context": {"page": {"path": "/trial"}, "campaign": {}},
    }
    lines = [
        json.dumps(good),
        json.dumps({**good, "messageId": None}),  # missing required field
        json.dumps({**good, "messageId": "msg-badts", "timestamp": 1719792000}),  # changed type
        '{"type": "page", "messageId": "msg-trunc", "timest',  # malformed line
    ]
    with gzip.open(land / "batch-extra.jsonl.gz", "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    ingest("segment")
    world = sandbox.world
    served = expected_counts(world, world.now_ts)["segment_events"]
    assert counts(["segment_events"])["segment_events"] == served + 1
    props = query("select properties from raw_segment.events where message_id = 'msg-drift'")
    assert json.loads(props[0][0])["brand_new_field"] == 7
    q = quarantine("segment")
    reasons = sorted(r["reason"] for r in q)
    assert len(q) == 3, reasons
    assert any("missing required field 'message_id'" in r for r in reasons)
    assert any("expected timestamp" in r and "1719792000" in r for r in reasons)
    assert any("malformed JSON line" in r and "batch-extra" in r for r in reasons)
    assert all(r["source"] == "segment" and r["load_id"] for r in q)


def _landed_ids(root) -> set[str]:
    """Every messageId in the landing files, read with gzip + json (not DuckDB)."""
    ids = set()
    for path in root.rglob("*.jsonl.gz"):
        with gzip.open(path, "rt") as fh:
            ids.update(json.loads(line)["messageId"] for line in fh if line.strip())
    return ids


def test_a_run_killed_between_batches_then_rerun_lands_every_event_once(
    data_dir, monkeypatch, caplog
):
    from lifecycle.sources import segment

    world = simulate(WorldConfig(contacts=500, seed=5))
    land = data_dir / "crash"
    monkeypatch.setenv(
        "AIRFLOW_CONN_SEGMENT_DEFAULT",
        json.dumps({"conn_type": "fs", "extra": {"path": str(land), "source_id": "web"}}),
    )
    write_segment_files(world, land, world.now_ts, anomalies=True)
    files = sorted(land.rglob("*.jsonl.gz"))
    monkeypatch.setattr(segment, "BATCH_BYTES", sum(f.stat().st_size for f in files) // 10)

    # the second batch dies inside its transaction, after its events were merged
    real = segment._quarantine
    batches = []

    def dies_in_second_batch(con, load_id):
        batches.append(load_id)
        if len(batches) == 2:
            raise RuntimeError("killed mid-batch")
        return real(con, load_id)

    monkeypatch.setattr(segment, "_quarantine", dies_in_second_batch)
    try:
        ingest("segment")
    except RuntimeError as exc:
        assert "killed mid-batch" in str(exc)
    else:
        raise AssertionError("the run was not killed")
    monkeypatch.setattr(segment, "_quarantine", real)
    first = {r[0] for r in query("select distinct source_file from raw_segment.events")}
    marked = {r[0] for r in query("select path from raw_segment._loaded_files")}
    assert first and marked, "the first batch was committed"
    # only the committed batch's files have rows (a re-delivered file's events may all
    # sit under its original's name), and they are all marked done
    assert first <= {f"{land}/{p}" for p in marked}, "a file with rows is marked done"
    assert len(first) < len(files) and len(marked) < len(files), "the second was not"

    ids = _landed_ids(land)
    with caplog.at_level(logging.INFO):
        loaded = ingest("segment")
    assert f"segment: {len(files) - len(marked)} new or changed files" in caplog.text
    assert loaded["events"] > 0
    n, distinct = query("select count(*), count(distinct message_id) from raw_segment.events")[0]
    assert n == distinct == len(ids)

    # a loaded file gets new lines (and one of its own lines again): only they are new
    target = files[0]
    with gzip.open(target, "rt") as fh:
        lines = [line for line in fh if line.strip()]
    new = []
    for i in range(3):
        event = {**json.loads(lines[0]), "messageId": f"msg-appended-{i}"}
        new.append(json.dumps(event) + "\n")
    with gzip.open(target, "wt") as fh:
        fh.writelines([*lines, lines[-1], *new])
    caplog.clear()
    with caplog.at_level(logging.INFO):
        ingest("segment")
    assert "segment: 1 new or changed files" in caplog.text
    ids = _landed_ids(land)
    n, distinct = query("select count(*), count(distinct message_id) from raw_segment.events")[0]
    assert n == distinct == len(ids)
    got = query("select message_id from raw_segment.events where message_id like 'msg-appended-%'")
    assert len(got) == 3

    # a full refresh reads every file again and leaves the same events
    caplog.clear()
    with caplog.at_level(logging.INFO):
        loaded = ingest("segment", full_refresh=True)
    assert f"segment: {len(files)} new or changed files" in caplog.text
    assert loaded["events"] >= len(ids)
    n, distinct = query("select count(*), count(distinct message_id) from raw_segment.events")[0]
    assert n == distinct == len(ids)
