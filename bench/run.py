"""Run every benchmark in bench/bench_*.py and write bench/REPORT.md.

Each module exposes ``run(quick: bool) -> dict`` returning ``{"title": str, "figures":
{name: value}, "notes": str}``. Figures are measured here, on this machine; unit tests
never assert timings.

    python bench/run.py            # full sizes (minutes)
    python bench/run.py --quick    # small sizes (a smoke run)
    python bench/run.py --only sync
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--only", help="run only bench_<ONLY>.py")
    parser.add_argument("--out", default=str(HERE / "REPORT.md"), help="report path")
    args = parser.parse_args(argv)
    modules = sorted(HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.stem == f"bench_{args.only}"]
    sections = []
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(f"== {path.stem} ...", flush=True)
        t0 = time.perf_counter()
        result = mod.run(quick=args.quick)
        result.setdefault("figures", {})["bench wall time (s)"] = round(time.perf_counter() - t0, 1)
        print(json.dumps(result["figures"], indent=2, default=str), flush=True)
        sections.append((path.stem, result))
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench{' QUICK=1' if args.quick else ''}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {platform.python_version()}, "
        f"{os.cpu_count()} cores, {platform.machine()}.",
        "",
    ]
    for name, r in sections:
        lines += [f"## {r.get('title', name)}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r["figures"].items()]
        if r.get("notes"):
            lines += ["", r["notes"]]
        lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
