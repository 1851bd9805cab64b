"""Ingestion: world sizes, simulator and landing speed, connector throughput.

    .venv/bin/python bench/run.py --only ingest [--quick]

Full: row counts and ingest throughput on a 10,000-contact world; for 100,000 contacts
the simulator, the Segment landing and the Segment connector over all its files (2.4
million events in one load); for 1,000,000 contacts the simulator and the landing (about
5 minutes and 10 GB; ``BENCH_INGEST_1M=0`` skips it). Each size runs in a child process
whose peak memory is reported.
Quick: a 2,000-contact world and a 20,000-contact simulation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

_GEN = """
import json, os, resource, sys, time
from pathlib import Path
sys.path.insert(0, {plugins!r})
from lifecycle.sandbox.world import WorldConfig, simulate
from lifecycle.sandbox.segment.landing import write_segment_files
def peak():
    # VmHWM: this process's own peak; ru_maxrss would keep the parent's size from fork
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
w = simulate(WorldConfig(contacts={n}))
t1 = time.perf_counter()
out = {{"simulate_s": t1 - t0, "events": len(w.events), "simulate_peak_mb": peak()}}
days = write_segment_files(w, Path({tmp!r}) / "landing", w.now_ts)
out.update(land_s=time.perf_counter() - t1, landed=sum(days.values()), peak_rss_mb=peak())
if {ingest!r}:
    from lifecycle.airflow_env import environment
    from lifecycle.sandbox.server import connection_env
    del w  # the connector reads the files, not the world
    import gc; gc.collect()
    try:  # reset the peak so the connector's own is measured (Linux >= 4.0)
        open("/proc/self/clear_refs", "w").write("5")
    except OSError:
        pass
    os.environ.update(environment(Path({root!r}), airflow_home=Path({tmp!r}) / "airflow_home",
                                  data_dir=Path({tmp!r}) / "data"))
    os.environ["DLT_DATA_DIR"] = str(Path({tmp!r}) / "data" / "dlt")
    os.environ["LIFECYCLE_DATA_DIR"] = str(Path({tmp!r}) / "data")
    os.environ.update(connection_env("http://127.0.0.1:9", Path({tmp!r}) / "landing"))
    from lifecycle.tasks import ingest
    t2 = time.perf_counter()
    counts = ingest("segment")
    out.update(ingest_s=time.perf_counter() - t2, ingested=counts.get("events", 0),
               ingest_peak_mb=peak())
print(json.dumps(out))
"""


def _generate(n: int, ingest: bool = False) -> dict:
    """Simulate ``n`` contacts, land their web files (and load them) in a child process."""
    with tempfile.TemporaryDirectory(prefix="bench-world-") as tmp:
        plugins = str(ROOT / "plugins")
        code = _GEN.format(plugins=plugins, root=str(ROOT), n=n, tmp=tmp, ingest=ingest)
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])


def _timed_ingest(source: str, **kw) -> tuple[dict, float]:
    from lifecycle.tasks import ingest  # noqa: PLC0415

    t0 = time.perf_counter()
    counts = ingest(source, **kw)
    return counts, time.perf_counter() - t0


def _ingest_figures(contacts: int) -> dict:
    from lifecycle.airflow_env import environment  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    os.environ.update(environment(ROOT, airflow_home=tmp / "airflow_home", data_dir=tmp / "data"))
    os.environ["DLT_DATA_DIR"] = str(tmp / "data" / "dlt")
    os.environ["LIFECYCLE_DATA_DIR"] = str(tmp / "data")

    import requests  # noqa: PLC0415

    from lifecycle.sandbox.expected import expected_counts  # noqa: PLC0415
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare  # noqa: PLC0415
    from lifecycle.sandbox.world import WorldConfig  # noqa: PLC0415

    figures: dict = {}
    world = prepare(WorldConfig(contacts=contacts, seed=42), tmp / "data" / "landing")
    expected = expected_counts(world, world.now_ts)
    for k, v in expected.items():
        figures[f"{contacts:,}-contact world: {k} rows"] = v
    with SandboxServer(world) as srv:
        os.environ.update(connection_env(srv.base_url, tmp / "data" / "landing"))
        # 1) a first HubSpot load at the vendor's documented limits: the list endpoint
        #    (150 requests per 10 s) for the records, search (4 requests/s) never
        hs, secs = _timed_ingest("hubspot")
        rows = hs.get("contacts", 0) + hs.get("companies", 0) + hs.get("deals", 0)
        figures["HubSpot full pull (list endpoint), vendor limits: rows"] = rows
        figures["HubSpot full pull (list endpoint), vendor limits: rows/s"] = round(rows / secs)
        # 2) the same pull with the limits lifted: what the connector itself sustains
        requests.post(
            f"{srv.base_url}/_sandbox/limits",
            json={"hubspot_search_per_s": 100_000, "hubspot_per_10s": 1_000_000},
            timeout=10,
        ).raise_for_status()
        hs, secs = _timed_ingest("hubspot", full_refresh=True)
        figures["HubSpot full pull, no rate limit: rows/s"] = round(rows / secs)
        # 3) an incremental night with nothing new: the fixed cost of a run
        _, secs = _timed_ingest("hubspot")
        figures["HubSpot incremental run with no changes (s)"] = round(secs, 2)
        # 4) web events through DuckDB -> Arrow -> dlt
        seg, secs = _timed_ingest("segment")
        figures["Segment files -> raw_segment.events: events"] = seg.get("events", 0)
        figures["Segment files -> raw_segment.events: rows/s"] = round(seg.get("events", 0) / secs)
        _, secs = _timed_ingest("segment")
        figures["Segment re-run with no new files (s)"] = round(secs, 2)
        # 5) Mailchimp (members, campaigns, activity; 5 parallel connections)
        mc, secs = _timed_ingest("mailchimp")
        mrows = sum(v for k, v in mc.items() if k != "quarantine")
        figures["Mailchimp full pull: rows"] = mrows
        figures["Mailchimp full pull: rows/s"] = round(mrows / secs)
    return figures


def run(quick: bool) -> dict:
    contacts = 2_000 if quick else 10_000
    figures = _ingest_figures(contacts)
    sizes = (20_000,) if quick else (100_000, 1_000_000)
    if os.environ.get("BENCH_INGEST_1M") == "0":
        sizes = tuple(n for n in sizes if n < 1_000_000)
    for n in sizes:
        g = _generate(n, ingest=n == 100_000)
        figures[f"simulate {n:,} contacts (s)"] = round(g["simulate_s"], 1)
        figures[f"simulate {n:,} contacts: web events"] = g["events"]
        figures[f"simulate {n:,} contacts: peak memory (MB)"] = round(g["simulate_peak_mb"])
        figures[f"land {n:,}-contact web files as JSONL.gz (s)"] = round(g["land_s"], 1)
        figures[f"land {n:,}-contact web files: events/s"] = round(g["landed"] / g["land_s"])
        figures[f"simulate + land {n:,} contacts: peak memory (MB)"] = round(g["peak_rss_mb"])
        if "ingest_s" in g:
            figures[f"Segment connector, {n:,}-contact files: events"] = g["ingested"]
            figures[f"Segment connector, {n:,}-contact files: rows/s"] = round(
                g["ingested"] / g["ingest_s"]
            )
            figures[f"Segment connector, {n:,}-contact files: peak memory (MB)"] = round(
                g["ingest_peak_mb"]
            )
    return {
        "title": "Ingestion (sandbox world, connectors into DuckDB)",
        "figures": figures,
        "notes": (
            "HubSpot pages are 100 records; a first load pages the list endpoint under "
            "the emulated general limit (150 requests per 10 s = at most 1,500 records/s, "
            "before the consent-history batch reads and the erasure listing), as with the "
            "real vendor (until 2026-12-01 it searched, at most 400 records/s at 4 "
            "requests/s); the second figure lifts the emulator's limits to show the "
            "connector's own cost. Segment: DuckDB reads the gzipped JSON lines and merges "
            "them into raw_segment itself (no dlt since 2026-12-01). Each size runs in a "
            "child process; peak memory is its own "
            "peak resident set (VmHWM), reset before the Segment connector runs so that "
            "figure is the load's (an upper bound: freed world memory may linger). "
            "Figures come from a 2-core machine shared with other work: treat them as "
            "orders of magnitude."
        ),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
