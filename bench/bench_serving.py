"""Quality gate and serving: GE suite time on pandas, publish time, a reader during swaps.

Synthetic warehouse (no sandbox): ``raw_segment.events`` of N events over 30 days and
``marts.dim_contacts`` / ``fct_lifecycle_stage_history`` of C contacts. Measures the
raw_segment suite (Great Expectations on a DataFrame read from DuckDB) as shipped (its
event batches read the night's partition) and, for comparison, reading the whole table;
each in a child process, so its peak memory is its own. Then ``publish()`` and a
separate reader process querying the serving file while it is swapped repeatedly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from lifecycle.config import settings
from lifecycle.warehouse import connect, publish

ROOT = Path(__file__).resolve().parents[1]

READER = r"""
import json, sys, time, duckdb
from lifecycle.warehouse import probe
path, stop, out = sys.argv[1:4]
s = {"queries": 0, "lock_errors": 0, "other_errors": 0, "torn": 0}
while True:
    try:
        con = duckdb.connect(path, read_only=True)
        try:
            s["torn"] += probe(con)[1]
        finally:
            con.close()
        s["queries"] += 1
    except duckdb.Error as exc:
        s["lock_errors" if "lock" in str(exc).lower() else "other_errors"] += 1
    try:
        open(stop).close()
        break
    except FileNotFoundError:
        time.sleep(0.01)
json.dump(s, open(out, "w"))
"""

SUITE_RUN = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from lifecycle.quality.expectations import run_layer
from lifecycle.warehouse import connect
con = connect()
results = run_layer(con, "raw", "2026-07-01", sys.argv[2], suites_dir=Path(sys.argv[1]))
con.close()
print(json.dumps({"s": time.perf_counter() - t0,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                  "passed": sum(r.success for r in results), "total": len(results)}))
"""


def _suite_child(suites: Path, run_id: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SUITE_RUN, str(suites), run_id],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _warehouse(path: Path, events: int, contacts: int) -> None:
    con = duckdb.connect(str(path))
    con.execute("set TimeZone = 'UTC'")
    con.execute("create schema raw_segment; create schema marts; create schema audiences")
    con.execute(f"""create table raw_segment.events as
        select 'm' || range::varchar as message_id,
               (['page', 'track', 'identify'])[1 + range % 3] as type,
               case when range % 3 = 1 then 'Signed Up' end as event,
               'a' || (range % {contacts})::varchar as anonymous_id,
               null::varchar as user_id,
               timestamptz '2026-06-01'
                 + to_microseconds((range * 2592000000000 // {events})::bigint)
                 as "timestamp",
               "timestamp" + interval 2 second as received_at
        from range({events})""")
    con.execute(f"""create table marts.dim_contacts as
        select 'c' || range::varchar as contact_id,
               (['subscriber', 'lead', 'mql', 'customer'])[1 + range % 4] as lifecycle_stage,
               (range % 100)::double as lead_score, true as has_ad_consent,
               false as has_email_consent
        from range({contacts})""")
    con.execute("""create table marts.fct_lifecycle_stage_history as
        select contact_id, lifecycle_stage as stage, true as is_current from marts.dim_contacts""")
    con.execute("""create table audiences.aud_sales_ready as
        select contact_id from marts.dim_contacts where lifecycle_stage = 'mql'""")
    con.close()


def run(quick: bool) -> dict:
    events, contacts, swaps = (200_000, 20_000, 5) if quick else (2_000_000, 200_000, 10)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    old_env = dict(os.environ)
    os.environ.update({"LIFECYCLE_DATA_DIR": str(work / "data"), "LIFECYCLE_HOME": str(ROOT)})
    for var in ("LIFECYCLE_WAREHOUSE_PATH", "LIFECYCLE_SERVING_PATH"):
        os.environ.pop(var, None)
    try:
        s = settings()
        s.data_dir.mkdir(parents=True)
        t0 = time.perf_counter()
        _warehouse(s.warehouse_path, events, contacts)
        build_s = time.perf_counter() - t0
        suites, whole = work / "suites", work / "suites_whole"
        suites.mkdir()
        whole.mkdir()
        shipped = (ROOT / "include/expectations/raw_segment.yml").read_text()
        (suites / "raw_segment.yml").write_text(shipped)
        # the same suite reading the whole table: no partition on its table batch, no
        # partition filter in its SQL batch
        (whole / "raw_segment.yml").write_text(
            "\n".join(
                ln
                for ln in shipped.splitlines()
                if ln.strip() != "partition: timestamp" and "{partition_start}" not in ln
            )
        )
        night = _suite_child(suites, "bench")
        full = _suite_child(whole, "bench_whole")
        con = connect()
        in_partition = con.execute(
            """select count(*) from raw_segment.events
               where "timestamp" >= timestamp '2026-06-27' or "timestamp" is null"""
        ).fetchone()[0]
        con.close()

        publish(night="2026-06-30", run_id="bench0")
        stop, out = work / "stop", work / "reader.json"
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(s.serving_path), str(stop), str(out)],
            env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        )
        times = []
        for i in range(swaps):
            t0 = time.perf_counter()
            publish(night="2026-07-01", run_id=f"bench{i + 1}")
            times.append(time.perf_counter() - t0)
        time.sleep(0.5)
        stop.touch()
        reader.wait(timeout=60)
        stats = json.loads(out.read_text())
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        shutil.rmtree(work, ignore_errors=True)
    return {
        "title": "Quality gate and serving snapshot",
        "figures": {
            "events / contacts": f"{events:,} / {contacts:,}",
            "build synthetic warehouse (s)": round(build_s, 1),
            "raw_segment suite, night's partition, incl. GE import, Data Docs (s)": round(
                night["s"], 1
            ),
            "raw_segment suite, night's partition: peak memory (MB)": night["peak_mb"],
            "raw_segment suite, night's partition: event rows read": in_partition,
            "raw_segment suite, whole table (s)": round(full["s"], 1),
            "raw_segment suite, whole table: peak memory (MB)": full["peak_mb"],
            "raw_segment checks (pass/total)": f"{night['passed']}/{night['total']}",
            "publish, mean of swaps (s)": round(sum(times) / len(times), 2),
            "swaps while reading": swaps,
            "reader queries": stats["queries"],
            "reader lock errors": stats["lock_errors"],
            "reader other errors": stats["other_errors"],
            "reader torn snapshots": stats["torn"],
        },
        "notes": "GE reads its batches into pandas. The shipped raw_segment suite reads the "
        "night's partition (the last 4 days, partition_days) of the event table; the whole-"
        "table figures are the same suite without `partition:`, for comparison. The synthetic "
        "events span 30 days, so the partition is about 4/30 of them; on a year of events "
        "it is about 4/365.",
    }
