"""The ``lifecycle`` command: run the demo, the sandbox, syncs and evaluations.

Run ``lifecycle --help`` or ``lifecycle <command> --help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from lifecycle.config import settings

log = logging.getLogger("lifecycle")

DEMO_DATE = "2026-07-01"


def _world_args(p: argparse.ArgumentParser, contacts: int = 2000) -> None:
    p.add_argument(
        "--contacts",
        type=int,
        default=contacts,
        help=f"known contacts in the simulated world (default {contacts})",
    )
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    p.add_argument(
        "--now",
        default=DEMO_DATE,
        help=f"the world's today: vendors serve what happened before it (default {DEMO_DATE})",
    )


def _world_config(args):
    from lifecycle.sandbox.world import WorldConfig  # noqa: PLC0415

    return WorldConfig(contacts=args.contacts, seed=args.seed, now=date.fromisoformat(args.now))


def cmd_sandbox_serve(args) -> int:
    from lifecycle.sandbox.server import serve  # noqa: PLC0415

    landing = Path(args.landing or settings().landing_dir)
    print(
        f"sandbox: simulating {args.contacts} contacts (seed {args.seed}), landing web "
        f"files in {landing}",
        flush=True,
    )
    serve(_world_config(args), landing, port=args.port)
    return 0


def cmd_sandbox_truth(args) -> int:
    from lifecycle.sandbox.world import simulate, truth_table  # noqa: PLC0415

    world = simulate(_world_config(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = truth_table(world)
    truth.to_csv(out / "truth_contacts.csv", index=False)
    print(f"wrote ground truth for {len(truth)} contacts to {out / 'truth_contacts.csv'}")
    return 0


def _stage(n: int, total: int, text: str) -> None:
    print(f"[{n}/{total}] {text}", flush=True)


TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
TASK_STATE = re.compile(r"Task instance state updated .*new_state=(\w+)")


def cmd_demo(args) -> int:
    """Run the nightly DAG once on the embedded default and print what happened."""
    from lifecycle.airflow_env import DAG_ID, dbt_parse, environment, prepare_home  # noqa: PLC0415
    from lifecycle.sandbox.server import (  # noqa: PLC0415
        connection_env,
        start_background,
        stop_background,
    )
    from lifecycle.tasks import latest_summary, render  # noqa: PLC0415

    t0 = time.monotonic()
    s = settings()
    env = environment()
    os.environ.update(env)
    total = 5
    _stage(1, total, f"preparing Airflow home {env['AIRFLOW_HOME']} (SQLite, LocalExecutor)")
    prepare_home(env)
    _stage(2, total, "parsing the dbt project (manifest for Cosmos)")
    dbt_parse(env)
    _stage(
        3,
        total,
        f"starting the sandbox on 127.0.0.1:{args.port} "
        f"({args.contacts} contacts, seed {args.seed})",
    )
    pid_file = s.data_dir / "sandbox.pid"
    start_background(_world_config(args), s.landing_dir, pid_file, port=args.port)
    env.update(connection_env(f"http://127.0.0.1:{args.port}", s.landing_dir))
    log_path = s.data_dir / "runs" / args.now / "airflow-dags-test.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        _stage(4, total, f"running DAG {DAG_ID} for night {args.now} (full log: {log_path})")
        rc = _run_dag(env, DAG_ID, args.now, log_path)
    finally:
        stop_background(pid_file)
    if rc != 0:
        print(f"\nDAG run FAILED (exit {rc}). Last lines of {log_path}:", file=sys.stderr)
        print("".join(log_path.read_text().splitlines(True)[-40:]), file=sys.stderr)
        return rc
    _stage(5, total, f"done in {time.monotonic() - t0:.0f}s; sandbox stopped")
    summary = latest_summary(s.data_dir)
    if summary:
        print()
        print(render(summary))
    return 0


def _run_dag(env: dict, dag_id: str, night: str, log_path: Path) -> int:
    """``airflow dags test`` with its log in a file and one line per task outcome here."""
    from lifecycle.airflow_env import bin_path  # noqa: PLC0415

    current, started = "", time.monotonic()
    with open(log_path, "w") as fh:
        proc = subprocess.Popen(
            [bin_path("airflow"), "dags", "test", dag_id, night],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            start = TASK_START.search(line)
            if start:
                index = f"[{start.group(2)}]" if start.group(2) != "-1" else ""
                current, started = start.group(1) + index, time.monotonic()
                continue
            state = TASK_STATE.search(line)
            if state and current:
                print(
                    f"      {state.group(1):<14} {current} ({time.monotonic() - started:.1f}s)",
                    flush=True,
                )
        return proc.wait()


def cmd_airflow(args) -> int:
    """``airflow standalone`` with the project's DAGs, pointed at a running sandbox."""
    from lifecycle.airflow_env import bin_path, dbt_parse, environment, prepare_home  # noqa: PLC0415
    from lifecycle.sandbox.server import (  # noqa: PLC0415
        connection_env,
        start_background,
        stop_background,
    )

    s = settings()
    env = environment()
    env["AIRFLOW__API__PORT"] = str(args.airflow_port)
    os.environ.update(env)
    print("preparing Airflow home and dbt manifest...", flush=True)
    prepare_home(env)
    dbt_parse(env)
    pid_file = s.data_dir / "sandbox.pid"
    print(f"starting the sandbox on 127.0.0.1:{args.port}...", flush=True)
    start_background(_world_config(args), s.landing_dir, pid_file, port=args.port)
    env.update(connection_env(f"http://127.0.0.1:{args.port}", s.landing_dir))
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(
        f"\nAirflow UI: http://127.0.0.1:{args.airflow_port}  (ready in about 20 s)\n"
        f"Log in as 'admin' with the password in {passwords}\n"
        f"  (cat {passwords})\n"
        f"Trigger DAG 'lifecycle_nightly' with logical date {args.now} to build the "
        f"sandbox world's night. Ctrl-C stops Airflow and the sandbox.\n",
        flush=True,
    )
    try:
        return subprocess.call([bin_path("airflow"), "standalone"], env={**os.environ, **env})
    except KeyboardInterrupt:
        return 0
    finally:
        stop_background(pid_file)


def cmd_sync(args) -> int:
    """Sync (or with --dry-run, plan) each matching audience x destination."""
    from lifecycle.activation import engine  # noqa: PLC0415
    from lifecycle.activation.audiences import AudienceConfigError, load, manifest_models  # noqa: PLC0415
    from lifecycle.warehouse import connect  # noqa: PLC0415

    s = settings()
    try:
        specs = load(
            s.include_dir / "audiences.yml", manifest_models(s.dbt_target_dir / "manifest.json")
        )
    except AudienceConfigError as exc:
        print(f"invalid audiences.yml: {exc}", file=sys.stderr)
        return 2
    specs = [
        x
        for x in specs
        if (not args.audience or x.audience == args.audience)
        and (not args.destination or x.destination == args.destination)
    ]
    if not specs:
        print(
            f"no sync for audience={args.audience or '*'} destination={args.destination or '*'} "
            f"in {s.include_dir / 'audiences.yml'}",
            file=sys.stderr,
        )
        return 2
    if args.dry_run and not s.warehouse_path.exists():
        print(f"no warehouse at {s.warehouse_path}: run `make demo` first", file=sys.stderr)
        return 2
    con = connect(read_only=args.dry_run)
    rc = 0
    try:
        for spec in specs:
            result = engine.run(
                con, spec, engine.destination(spec.destination), dry_run=args.dry_run
            )
            plan = result.pop("plan", None)
            excluded = result["audience_size"] - result["sendable"]
            print(
                f"{spec.audience} -> {spec.destination} ({spec.mode}): "
                f"{result['audience_size']} rows, {result['sendable']} sendable "
                f"({excluded} without {spec.channel} consent or identifier); "
                f"+{result['planned_adds']} add, ~{result['planned_updates']} update, "
                f"-{result['planned_removes']} remove, {result['deferred']} deferred "
                f"[{result['status']}]"
            )
            for warning in result["warnings"]:
                print(f"  warning: {warning}")
            if plan:
                for mark, change, members in (
                    ("+", "add", plan.adds),
                    ("~", "update", plan.updates),
                    ("-", "remove", plan.removes),
                ):
                    shown = members if not args.limit else members[: args.limit]
                    for m in shown:
                        print(f"  {mark} {change:<6} contact_id={m.contact_id} key={m.key}")
                    if len(shown) < len(members):
                        print(
                            f"  {mark} ... {len(members) - len(shown)} more {change}s "
                            f"(--limit 0 lists all)"
                        )
            elif result["status"] not in ("aborted", "failed"):
                print(
                    f"  sent {result['sent']}, accepted {result['accepted']}, "
                    f"rejected {result['rejected']}"
                    + (
                        f", match rate {result['match_rate']:.0%}"
                        if result["match_rate"] is not None
                        else ""
                    )
                )
            if result["status"] in ("aborted", "failed"):
                print(f"  {result['status'].upper()}: {result['error']}", file=sys.stderr)
                rc = 1
    finally:
        con.close()
    return rc


def cmd_summary(args) -> int:
    from lifecycle.tasks import latest_summary, render  # noqa: PLC0415

    summary = latest_summary()
    if not summary:
        print("no run summary yet: run `make demo` first", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.json else render(summary))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifecycle", description="lifecycle-pipeline: customer-lifecycle data platform"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "demo",
        help="run the nightly DAG once against the local sandbox",
        description="Prepare the embedded Airflow, start the sandbox, run "
        "lifecycle_nightly once with `airflow dags test`, print "
        "a summary and stop the sandbox.",
    )
    _world_args(p)
    p.add_argument("--port", type=int, default=8765, help="sandbox port (default 8765)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "airflow",
        help="start Airflow standalone (UI) with the sandbox",
        description="Start `airflow standalone` with the project's DAGs and "
        "the sandbox, and print the UI address and login.",
    )
    _world_args(p)
    p.add_argument("--port", type=int, default=8765, help="sandbox port (default 8765)")
    p.add_argument("--airflow-port", type=int, default=8080, help="UI port (default 8080)")
    p.set_defaults(func=cmd_airflow)

    sb = sub.add_parser("sandbox", help="the local vendor-API emulators and simulator")
    sbs = sb.add_subparsers(dest="sandbox_command", required=True)
    p = sbs.add_parser(
        "serve",
        help="simulate a world and serve its vendor APIs",
        description="Simulate a world, land its Segment files, and serve "
        "HubSpot, Mailchimp and Meta APIs on 127.0.0.1.",
    )
    _world_args(p)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--landing", help="landing folder for web files (default data/landing)")
    p.set_defaults(func=cmd_sandbox_serve)
    p = sbs.add_parser(
        "truth",
        help="write the simulated world's ground truth",
        description="Write ground truth per contact (stage dates, stage on "
        "the world's today, 30-day conversion) as CSV.",
    )
    _world_args(p)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_sandbox_truth)

    p = sub.add_parser(
        "sync",
        help="sync audiences to destinations (or --dry-run)",
        description="Diff each audience (include/audiences.yml) against what its "
        "destination last accepted and send only the changes: adds, updates and, in "
        "mirror mode, removes. Guards abort before anything is sent; --dry-run prints the "
        "plan and sends nothing.",
    )
    p.add_argument("--audience", help="only this audience (name in include/audiences.yml)")
    p.add_argument(
        "--destination", help="only this destination (meta, google_ads, mailchimp, hubspot)"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be added, updated and removed; send nothing, change nothing",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=20,
        help="with --dry-run, members listed per change (default 20; 0 = all)",
    )
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "summary",
        help="print the last night's summary",
        description="Print the summary of the most recent nightly run.",
    )
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
