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
    stamp = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    header = [
        "# Benchmark report",
        "",
        f"Written by `make bench{' QUICK=1' if args.quick else ''}` on {stamp}; "
        f"{platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}.",
        "",
    ]
    fresh = {}
    for name, r in sections:
        lines = [f"## {r.get('title', name)}", "", f"_Measured {stamp}._", ""]
        lines += ["| figure | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in r["figures"].items()]
        if r.get("notes"):
            lines += ["", r["notes"]]
        lines.append("")
        fresh[r.get("title", name)] = "\n".join(lines)
    out = Path(args.out)
    if args.only and out.exists():
        # one benchmark re-run: its section is replaced, the others stay as measured
        head, *parts = out.read_text().split("\n## ")
        head = head.split("\n\nRe-run with")[0].rstrip("\n")
        flags = f"--only {args.only}{' --quick' if args.quick else ''}"
        head += f"\n\nRe-run with `{flags}` on {stamp}; other sections as before.\n"
        sections_text = {x.split("\n", 1)[0]: "## " + x.rstrip("\n") + "\n" for x in parts}
        sections_text.update(fresh)
        text = head + "\n" + "\n".join(sections_text.values())
    else:
        text = "\n".join(header) + "\n" + "\n".join(fresh.values())
    out.write_text(text)
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
