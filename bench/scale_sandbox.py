"""The sandbox of one ``make bench SCALE=...`` run, in its own process.

    python bench/scale_sandbox.py --contacts N --landing DIR --port P

Simulates the world, lands its Segment files up to the night before the world's ``now``
and serves every vendor with the clock there (the full-refresh night). Both landings
deliver as object storage does (``anomalies``): 2% of each day's events arrive in a late
file three days later and 2% are appended to their day's file two days later, so each
night brings late events of earlier days that the first night did not have. It prints one JSON
line with the world's figures, then reads commands on stdin, one per line:

- ``advance``: the next night. Lands the new day's files and the late files and late
  events of the previous days, moves the clock to ``now`` and prints a JSON line with
  the landing's figures.
- ``quit`` (or end of input): stops.

World generation and landing are reported apart from the pipeline: this process is not
part of the pipeline's process tree, so its memory and CPU are not in the pipeline's
figures. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

DAY = 86_400


def _peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contacts", type=int, required=True, help="people to simulate")
    parser.add_argument("--seed", type=int, default=42, help="simulation seed (default 42)")
    parser.add_argument("--landing", type=Path, required=True, help="Segment landing folder")
    parser.add_argument("--port", type=int, required=True, help="loopback port to serve on")
    parser.add_argument("--profile", default="clean", help="noise profile (default clean)")
    args = parser.parse_args(argv)

    import requests  # noqa: PLC0415

    from lifecycle.sandbox.segment.landing import write_segment_files  # noqa: PLC0415
    from lifecycle.sandbox.server import SandboxServer  # noqa: PLC0415
    from lifecycle.sandbox.world import WorldConfig, simulate  # noqa: PLC0415

    t0 = time.perf_counter()
    world = simulate(
        WorldConfig(contacts=args.contacts, seed=args.seed, profile=args.profile),
        progress=lambda done, total: print(
            f"  simulating {done:,} / {total:,} people ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
            flush=True,
        ),
    )
    simulate_s = time.perf_counter() - t0
    first_night = world.now_ts - DAY
    t1 = time.perf_counter()
    days = write_segment_files(world, args.landing, first_night, anomalies=True)
    land_s = time.perf_counter() - t1
    with SandboxServer(world, port=args.port) as srv:
        requests.post(
            f"{srv.base_url}/_sandbox/clock", json={"now_ts": first_night}, timeout=600
        ).raise_for_status()
        print(
            json.dumps(
                {
                    "contacts": args.contacts,
                    "simulate_s": round(simulate_s, 2),
                    "web_events_simulated": len(world.events),
                    "land_s": round(land_s, 2),
                    "events_landed": int(sum(days.values())),
                    "peak_mb": round(_peak_mb()),
                    "now_ts": world.now_ts,
                    "first_night_ts": first_night,
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            command = line.strip()
            if command == "advance":
                t2 = time.perf_counter()
                days = write_segment_files(world, args.landing, world.now_ts, anomalies=True)
                requests.post(
                    f"{srv.base_url}/_sandbox/clock", json={"now_ts": world.now_ts}, timeout=600
                ).raise_for_status()
                print(
                    json.dumps(
                        {
                            "land_s": round(time.perf_counter() - t2, 2),
                            "events_landed": int(sum(days.values())),
                            "files_landed": len(days),
                        }
                    ),
                    flush=True,
                )
            elif command in ("quit", ""):
                break
            else:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
