"""The ``lifecycle`` command: run the demo, the sandbox, syncs, evaluations, erasures.

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


def _world_args(
    p: argparse.ArgumentParser, contacts: int = 2000, profile: str | None = "clean"
) -> None:
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
    p.add_argument(
        "--world",
        choices=["simulated", "cdnow"],
        default="simulated",
        help="simulated (default) or cdnow: replay CDNOW's 23,570 real customers (1997-98, "
        "moved 28 years on to end 2026-06-30) through the same vendor contracts (needs the "
        "lifetimes wheel: make install)",
    )
    if profile is not None:
        p.add_argument(
            "--profile",
            default=profile,
            help=f"noise profile from include/noise_profiles.yml: what the vendors record of "
            f"the journeys (clean or realistic; default {profile})",
        )


def _world_config(args):
    from lifecycle.sandbox.world import WorldConfig  # noqa: PLC0415

    if getattr(args, "world", "simulated") == "cdnow":
        from lifecycle.sandbox import cdnow  # noqa: PLC0415

        return cdnow.config(args.seed, date.fromisoformat(args.now))
    return WorldConfig(
        contacts=args.contacts,
        seed=args.seed,
        now=date.fromisoformat(args.now),
        profile=getattr(args, "profile", "clean"),
    )


def cmd_sandbox_serve(args) -> int:
    from lifecycle.sandbox.server import serve  # noqa: PLC0415

    landing = Path(args.landing or settings().landing_dir)
    print(
        f"sandbox: simulating {args.contacts} contacts (seed {args.seed}), landing web "
        f"files in {landing}",
        flush=True,
    )
    # progress of big worlds (a line per 50,000 people, per million landed events)
    logging.getLogger("lifecycle.sandbox").setLevel(logging.INFO)
    serve(
        _world_config(args),
        landing,
        port=args.port,
        segment_anomalies=args.segment_anomalies,
        world_kind=args.world,
    )
    return 0


def cmd_sandbox_truth(args) -> int:
    from lifecycle.sandbox.world import simulate, stage_history, truth_table  # noqa: PLC0415

    if args.world != "simulated":
        print("ground truth exists for simulated worlds only", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    print(f"simulating {args.contacts} contacts (seed {args.seed})...", flush=True)
    world = simulate(_world_config(args), progress=_people_progress(t0))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    truth = truth_table(world)
    print(f"writing {len(truth):,} contacts to {out / 'truth_contacts.csv'}...", flush=True)
    truth.to_csv(out / "truth_contacts.csv", index=False)
    history = stage_history(world)
    print(
        f"writing {len(history):,} stage spells to {out / 'truth_stage_history.csv'}...",
        flush=True,
    )
    history.to_csv(out / "truth_stage_history.csv", index=False)
    print(
        f"wrote ground truth for {len(truth)} contacts to {out / 'truth_contacts.csv'} "
        f"(stage dates, stage on {args.now}, 30-day conversion) and {len(history)} stage "
        f"spells to {out / 'truth_stage_history.csv'} (true stage on any day) in "
        f"{time.monotonic() - t0:.0f}s"
    )
    return 0


def _people_progress(t0: float):
    """A ``simulate`` progress callback: a line per block of people, for big worlds."""

    def show(done: int, total: int) -> None:
        if total > done or done > 50_000:
            print(f"  {done:,} / {total:,} people ({time.monotonic() - t0:.0f}s)", flush=True)

    return show


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
    what = "CDNOW replay" if args.world == "cdnow" else f"{args.contacts} contacts"
    _stage(3, total, f"starting the sandbox on 127.0.0.1:{args.port} ({what}, seed {args.seed})")
    pid_file = s.data_dir / "sandbox.pid"
    config = _world_config(args)
    start_background(config, s.landing_dir, pid_file, port=args.port, world=args.world)
    env.update(connection_env(f"http://127.0.0.1:{args.port}", s.landing_dir))
    if args.world == "cdnow":  # the papers' 39/39-week split for the nightly calibration
        from lifecycle.sandbox.cdnow import HOLDOUT_DAYS  # noqa: PLC0415

        env["LIFECYCLE_PREDICT_CALIBRATION_HOLDOUT_DAYS"] = str(HOLDOUT_DAYS)
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
    # task processes report to the execution API on the api-server's port, not 8080
    env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] = (
        f"http://127.0.0.1:{args.airflow_port}/execution/"
    )
    os.environ.update(env)
    print("preparing Airflow home and dbt manifest...", flush=True)
    prepare_home(env)
    dbt_parse(env)
    pid_file = s.data_dir / "sandbox.pid"
    print(f"starting the sandbox on 127.0.0.1:{args.port}...", flush=True)
    start_background(_world_config(args), s.landing_dir, pid_file, port=args.port, world=args.world)
    env.update(connection_env(f"http://127.0.0.1:{args.port}", s.landing_dir))
    passwords = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    print(
        f"\nAirflow UI: http://127.0.0.1:{args.airflow_port}  (ready in about 20 s)\n"
        f"Log in as 'admin' with the password in {passwords}\n"
        f"  (cat {passwords})\n"
        f"Lifecycle page (nav entry 'Lifecycle'): "
        f"http://127.0.0.1:{args.airflow_port}/plugin/lifecycle\n"
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
        if not args.dry_run and not args.no_wait and engine.finish_jobs(con)["running"]:
            print("waiting for vendor jobs (Google Ads Customer Match jobs take minutes)...")
            state = engine.wait_for_jobs(con, poll_s=args.poll)
            for f in state["finished"]:
                if f.get("kind") == "sync":
                    print(
                        f"  job {f['job_id']} ({f['audience']} -> {f['destination']}, "
                        f"{f['change']}): {f['accepted']} accepted, {f['rejected']} rejected"
                    )
            if state["running"]:
                print(
                    f"  {state['running']} job(s) still running: the nightly DAG's "
                    f"activate.wait_for_vendor_jobs (or `lifecycle sync` again) finishes them"
                )
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


def cmd_quality(args) -> int:
    """Run the quality gate on the warehouse (or on a deliberately broken copy of it)."""
    import shutil  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from lifecycle import warehouse  # noqa: PLC0415
    from lifecycle.quality.expectations import docs_index  # noqa: PLC0415
    from lifecycle.quality.gate import QualityGateFailed  # noqa: PLC0415
    from lifecycle.tasks import quality_check  # noqa: PLC0415

    s = settings()
    if not s.warehouse_path.exists():
        print(f"no warehouse at {s.warehouse_path}: run `make demo` first", file=sys.stderr)
        return 2
    if not args.verbose:  # the lines below say it once
        logging.getLogger("lifecycle.quality").setLevel(logging.CRITICAL)
    if args.break_:
        from lifecycle.quality.breakage import apply  # noqa: PLC0415

        copy_dir = Path(args.copy_to or tempfile.mkdtemp(prefix="lifecycle-broken-"))
        copy_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(s.warehouse_path, copy_dir / "warehouse.duckdb")
        os.environ["LIFECYCLE_DATA_DIR"] = str(copy_dir)
        os.environ.pop("LIFECYCLE_WAREHOUSE_PATH", None)
        s = settings()
        con = warehouse.connect(path=s.warehouse_path)
        try:
            what = apply(con, args.break_, args.night)
        finally:
            con.close()
        print(f"broke a copy of the warehouse ({what}): {s.warehouse_path}")
    run_id = f"cli__{time.strftime('%Y%m%dT%H%M%S')}"
    failures = []
    for kind in args.checks.split(","):
        try:
            quality_check(kind.strip(), run_id, args.night)
        except QualityGateFailed as exc:
            failures.append(str(exc))
    con = warehouse.connect(read_only=True, path=s.warehouse_path)
    rows = con.execute(
        "select status, suite, check_name, target, offending_rows, observed "
        "from ops.quality_results where run_id = ? order by status = 'pass', suite, 3",
        [run_id],
    ).fetchall()
    con.close()
    for status, suite, check, target, offending, observed in rows:
        if status != "pass" or args.verbose:
            print(
                f"{status.upper():<5} {suite}: {check} on {target}: {offending} offending "
                f"rows {observed}"
            )
    counts = {k: sum(r[0] == k for r in rows) for k in ("pass", "warn", "fail")}
    print(
        f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failures "
        f"(ops.quality_results run_id {run_id})"
    )
    print(f"Data Docs: {docs_index(s.data_dir)}")
    if failures:
        print("\nGATE FAILED: publish and activate would not run for this night.")
        for f in failures:
            print(f"  {f}")
        return 1
    return 0


def cmd_forget(args) -> int:
    """Erase one person from the warehouse at once (a data-subject request)."""
    import duckdb  # noqa: PLC0415

    from lifecycle import erasure  # noqa: PLC0415
    from lifecycle.warehouse import connect, publish  # noqa: PLC0415

    if args.email == "-":
        args.email = sys.stdin.readline().strip()
    s = settings()
    if not s.warehouse_path.exists():
        print(f"no warehouse at {s.warehouse_path}: nothing to erase", file=sys.stderr)
        return 2
    try:
        con = connect()
    except duckdb.IOException as exc:
        print(
            f"the warehouse {s.warehouse_path} is in use by another process (a nightly run?): "
            f"run `lifecycle forget` again when it ends ({str(exc).splitlines()[0]})",
            file=sys.stderr,
        )
        return 2
    try:
        erasure_id = erasure.record(con, "request", email=args.email, contact_id=args.contact_id)
        if erasure_id is None:
            print("nothing to erase: the identifier is empty", file=sys.stderr)
            return 2
        purged = erasure.purge(con, [erasure_id], models=True)
        e_hash, c_hash = con.execute(
            "select email_sha256, contact_id_sha256 from ops.erasures where erasure_id = ?",
            [erasure_id],
        ).fetchone()
        # the removal at every destination now (Meta, Google Ads, Mailchimp, HubSpot's
        # GDPR delete); whatever a destination refuses is sent again by the nightly
        # activate.erasures task
        from lifecycle.activation.erasure import propagate  # noqa: PLC0415

        deliveries = propagate(con, [erasure_id])
    finally:
        con.close()
    if not args.no_compact:
        # deleted rows keep their bytes in the file until DuckDB reuses the space
        erasure.compact(s.warehouse_path)
    print(
        f"erasure {erasure_id} recorded in ops.erasures (origin request; email sha256 "
        f"{(e_hash or 'unknown')[:12]}, contact id sha256 {(c_hash or 'unknown')[:12]})"
    )
    if deliveries:
        print("sent to the destinations:")
        for d in deliveries:
            detail = f": {d['detail']}" if d.get("detail") else ""
            print(f"  {d['destination']:<12} {d['status']:<13} {d['members']} member(s){detail}")
    else:
        print("no destination held this person (nothing synced to them yet)")
    if purged:
        print(f"deleted {sum(purged.values())} rows from the warehouse:")
        for table, n in sorted(purged.items()):
            print(f"  {table:<48} {n}")
    else:
        print("no rows of this person were in the warehouse")
    if s.serving_path.exists() and not args.no_publish:
        night = None
        try:
            served = duckdb.connect(str(s.serving_path), read_only=True)
            try:
                night = served.execute("select max(night) from ops.serving_snapshot").fetchone()[0]
            finally:
                served.close()
        except duckdb.Error:
            pass
        publish(night=str(night) if night else None, run_id=f"forget__{erasure_id[:12]}")
        print(f"serving snapshot {s.serving_path} republished without them (night {night})")
    print(
        "destinations: whatever a destination refused or could not take now is sent again "
        "by the next nightly activate.erasures task (ops.erasure_deliveries)"
    )
    return 0


def cmd_evaluate(args) -> int:
    """Simulate, ingest, build and score one world; the figures as JSON on the last line."""
    from lifecycle.evaluate import TARGETS, EvaluationError, evaluate  # noqa: PLC0415

    if not args.verbose:  # dlt's schema-hint warnings are noise for this report
        logging.getLogger("dlt").setLevel(logging.ERROR)
    try:
        figures = evaluate(
            args.contacts,
            seed=args.seed,
            now=date.fromisoformat(args.now),
            profile=args.profile,
            workdir=Path(args.workdir) if args.workdir else None,
            keep=args.keep,
        )
    except EvaluationError as exc:
        print(f"evaluation failed: {exc}", file=sys.stderr)
        return 1
    for key, (op, target) in TARGETS.items():
        missed = key in figures["targets_missed"]
        print(
            f"  {key:<30} {figures[key]:.4f}  (target {op} {target}) {'MISSED' if missed else 'ok'}"
        )
    print(json.dumps(figures), flush=True)
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
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    p.add_argument("--landing", help="landing folder for web files (default data/landing)")
    p.add_argument(
        "--segment-anomalies",
        action="store_true",
        help="land late files, events appended to past days and duplicated files",
    )
    p.set_defaults(func=cmd_sandbox_serve)
    p = sbs.add_parser(
        "truth",
        help="write the simulated world's ground truth",
        description="Write ground truth as CSV: truth_contacts.csv (per contact: stage "
        "dates, stage on the world's today, 30-day conversion) and truth_stage_history.csv "
        "(every contact's true stage as [valid_from, valid_to) spells: the stage on any day).",
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
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for vendor jobs (Google Ads); the nightly DAG finishes them",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=15.0,
        help="seconds between asking a vendor about its running jobs (default 15)",
    )
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser(
        "quality",
        help="run the quality gate (or see it fail on a broken copy)",
        description="Run freshness and the Great Expectations suites of "
        "include/expectations/ on the warehouse for a night, print every check "
        "that did not pass and the Data Docs path; exit 1 when the gate fails. "
        "--break damages a temporary COPY of the warehouse first.",
    )
    p.add_argument("--night", default=DEMO_DATE, help=f"the night (default {DEMO_DATE})")
    p.add_argument(
        "--checks", default="freshness,raw,marts", help="comma list of freshness, raw, marts"
    )
    p.add_argument(
        "--break",
        dest="break_",
        choices=["duplicate-keys", "empty-day", "schema-change", "stale-source", "no-consent"],
        help="first break a copy of the warehouse like a misbehaving source would",
    )
    p.add_argument("--copy-to", help="folder for the broken copy (default: a new temp folder)")
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser(
        "forget",
        help="erase one person from the warehouse now (data-subject request)",
        description="Record a `request` erasure in ops.erasures (hashes only: the email or "
        "id is never stored or printed) and delete the person's rows at once from every "
        "raw table (HubSpot, Mailchimp, Segment), the dbt models (intermediate, marts, "
        "audiences) and the serving snapshot, then rewrites the warehouse file so no byte of "
        "them is left in it. Later nights keep them out. Give the email, the HubSpot "
        "contact id, or both.",
    )
    p.add_argument(
        "--email",
        help="the person's email address (any case, spaces trimmed); '-' reads it from "
        "stdin, so it stays out of the shell history and the process list",
    )
    p.add_argument("--contact-id", help="the person's HubSpot contact id")
    p.add_argument(
        "--no-compact",
        action="store_true",
        help="do not rewrite the warehouse file afterwards (faster on a big warehouse; the "
        "deleted rows' bytes then stay in free blocks of the file until reused)",
    )
    p.add_argument(
        "--no-publish",
        action="store_true",
        help="do not republish the serving snapshot (BI keeps last night's until the next run)",
    )
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser(
        "summary",
        help="print the last night's summary",
        description="Print the summary of the most recent nightly run.",
    )
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "evaluate",
        help="score the lifecycle model against a simulated world's ground truth",
        description="Simulate a world, serve it, ingest it, run `dbt build` for its night "
        "and compare the marts with the simulator's ground truth. Prints progress and each "
        "target, then one JSON object on the last line: stage_accuracy, stage_macro_f1, "
        "stage_f1, stage_entry_median_abs_days, lead_score_auc, lead_score_positives, "
        "baseline_auc, identity_precision, identity_recall, bot_events_in_sessions, "
        "machine_open_precision, machine_open_recall, crm_conflicts_found_recall and "
        "context (see docs/model.md).",
    )
    _world_args(p, contacts=10_000, profile="realistic")
    p.add_argument(
        "--workdir", help="empty folder for the warehouse and landing files (default: a temp dir)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the work folder (warehouse) afterwards"
    )
    p.set_defaults(func=cmd_evaluate)

    from lifecycle.predict.command import add_parser as add_predict_parser  # noqa: PLC0415

    add_predict_parser(sub)  # issue 12: `lifecycle predict`
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "forget" and not (args.email or args.contact_id):
        parser.error("forget needs --email or --contact-id (or both)")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
