"""Loading the same interval twice, a full refresh, or a killed run re-run: same rows."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from sources_support import TABLES, add_faults, checksums, counts, set_clock

from lifecycle.sandbox.expected import expected_counts
from lifecycle.sandbox.world import DAY
from lifecycle.tasks import ingest

SOURCES = ("hubspot", "segment", "mailchimp")


def test_load_twice_and_full_refresh_leave_the_same_rows(sandbox):
    world = sandbox.world
    for s in SOURCES:
        ingest(s)
    first = checksums()
    assert counts() == expected_counts(world, world.now_ts)
    for s in SOURCES:
        ingest(s)
    assert checksums() == first
    for s in SOURCES:
        ingest(s, full_refresh=True)
    assert checksums() == first
    assert set(first) == set(TABLES.values())


def test_a_run_killed_mid_load_then_rerun_equals_an_uninterrupted_load(sandbox):
    world = sandbox.world
    hubspot = [t for t in TABLES.values() if t.startswith("raw_hubspot")]
    # a first night, so the killed run is an incremental one with state to protect
    set_clock(sandbox, world.now_ts - 30 * DAY)
    ingest("hubspot")
    set_clock(sandbox, world.now_ts)

    # the next run hangs on its 4th request and is killed there (SIGKILL, no cleanup)
    faults = sandbox.app.state.sandbox.faults
    add_faults(sandbox, "hubspot", [{}, {}, {}, {"delay_s": 3}])
    proc = subprocess.Popen(
        [sys.executable, "-c", "from lifecycle.tasks import ingest; ingest('hubspot')"],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while faults.get("hubspot") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    assert not faults.get("hubspot"), "the run never reached the hanging request"
    proc.kill()
    proc.wait(timeout=30)
    assert proc.returncode != 0

    ingest("hubspot")
    resumed = checksums(hubspot)
    assert counts(["hubspot_contacts", "hubspot_deals", "hubspot_companies"]) == {
        k: v for k, v in expected_counts(world, world.now_ts).items() if k.startswith("hubspot")
    }
    # the same as loading the same world from scratch
    ingest("hubspot", full_refresh=True)
    assert checksums(hubspot) == resumed
