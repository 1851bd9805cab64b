"""The scale benchmark: the whole night at 10k, 100k and 1M contacts (issue 13).

    make bench SCALE=s          # 10,000 contacts, median of 3 runs
    make bench SCALE=m          # 100,000 contacts, median of 3 runs
    make bench SCALE=l          # 1,000,000 contacts, one run
    python bench/scale.py --scale s --runs 1 --no-demo --no-audience --no-pandas

Each run simulates a world in its own process (``bench/scale_sandbox.py``, reported
apart: world generation and landing are not pipeline figures) and serves it on loopback
with the clock at the night before the world's "now". Then, as the nightly DAG orders
them, each stage runs in its own child process (as Airflow runs each task):

1. **Full refresh** (the first night): ingest HubSpot, Segment, Mailchimp into an empty
   warehouse; erase; ``dbt run --full-refresh`` (all but ``tag:predict``); predict; dbt
   run of ``tag:predict``; the quality gate (freshness, GE raw suites, ``dbt test``, GE
   mart suites); publish; activate (erasures, every audience sync, vendor jobs); publish
   the syncs.
2. **An incremental night**: the sandbox lands the next day's web files, with late files
   and late events of earlier days, and moves its clock a day; every stage again,
   incremental (HubSpot searches what changed, Segment reads new files, dbt's
   incremental models read their windows). The HubSpot and Mailchimp connections list
   every contact id / member on every 7th run only (``presence_check_every``), as a
   large account would: the incremental night is not a sweep night; a sweep night adds
   one HubSpot request per 100 contacts and one Mailchimp request per 1,000 members (the
   report states it).
3. **The same SQL run directly in DuckDB**, after the incremental night with the sandbox
   stopped: every model's compiled SQL of the full refresh, in dependency order, as
   ``create or replace table|view`` on a copy of the full refresh's warehouse;
   ``dbt_run_s / raw_sql_s`` is dbt's ratio to it.

Per stage: wall and CPU seconds, peak memory of the stage's whole process tree (psutil,
sampled every 0.1 s) and rows. Once per invocation (not per run): the 1,000,000-member
audience diff (``bench_sync.py``), the demo DAG (``make demo``'s ``airflow dags test``)
and, at s and m, a pandas reference of sessionization and lead scoring on the run's
warehouse (``bench/scale_pandas.py``).

Writes ``bench/results/<date>-<scale>.json`` (top-level ``figures``, the medians; every
run's stages under ``runs``; machine and versions) and rewrites the "Scale" section and
the chart ``bench/results/scale.svg`` in ``bench/REPORT.md`` from every results file.
Figures are measured here; no test asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "plugins"))

TIERS = {"s": 10_000, "m": 100_000, "l": 1_000_000}
RUNS = {"s": 3, "m": 3, "l": 1}
RESULTS = HERE / "results"
DBT = str(Path(sys.executable).parent / "dbt")
DAY = 86_400
#: the figures every results file carries (seconds unless the name says otherwise)
FIGURES = (
    "full_ingest_s",
    "ingest_floor_s",
    "segment_events_per_s",
    "dbt_build_s",
    "raw_sql_s",
    "quality_s",
    "quality_peak_mb",
    "incremental_night_s",
    "night_peak_mb",
    "audience_diff_1m_s",
    "audience_sent_pct",
    "demo_dag_s",
    "pandas_ratio",
)
#: the issue's targets on this machine (l tier): figure -> (bound, "max" | "min")
TARGETS = {
    "dbt_build_s": (240, "max"),
    "dbt_to_raw_sql": (2.0, "max"),
    "quality_s": (60, "max"),
    "quality_peak_mb": (2048, "max"),
    "incremental_work_s": (120, "max"),
    "night_peak_mb": (6144, "max"),
    "segment_events_per_s": (200_000, "min"),
    "ingest_to_floor": (1.25, "max"),
    "audience_diff_1m_s": (5, "max"),
    "audience_sent_pct": (1.05, "max"),
    "demo_dag_s": (45, "max"),
    "pandas_ratio": (3, "min"),
}
SEGMENT_FLOOR_EVENTS_PER_S = 200_000
#: the HubSpot and Mailchimp connections' ``presence_check_every`` (a weekly sweep)
PRESENCE_CHECK_EVERY = 7
#: what a results file records of how its runs were set up
SETTINGS = {"presence_check_every": PRESENCE_CHECK_EVERY}


# --------------------------------------------------------------------------- stages
# Each stage is `python bench/scale.py --stage NAME --night YYYY-MM-DD [--full-refresh]`
# in a child process whose environment points at the run's data and sandbox. It prints
# one JSON line (rows and details) last.


def _dbt(args: list[str]) -> dict:
    s_root = str(ROOT / "dbt_project")
    proc = subprocess.run(
        [DBT, *args, "--project-dir", s_root, "--profiles-dir", s_root],
        capture_output=True,
        text=True,
    )
    sys.stderr.write(proc.stdout[-3000:])
    if proc.returncode != 0:
        raise SystemExit(f"dbt {' '.join(args)} failed (exit {proc.returncode})")
    results = json.loads((ROOT / "dbt_project" / "target" / "run_results.json").read_text())
    return {
        "nodes": len(results["results"]),
        "node_seconds": round(sum(r["execution_time"] for r in results["results"]), 2),
        "slowest": sorted(
            (
                (r["unique_id"].split(".")[-1], round(r["execution_time"], 2))
                for r in results["results"]
            ),
            key=lambda x: -x[1],
        )[:5],
    }


#: seeds and models, as Cosmos's transform group builds them; tests are the gate's
NO_TESTS = ("--exclude-resource-type", "test", "--exclude-resource-type", "unit_test")


def _stage(name: str, night: str, full_refresh: bool) -> dict:  # noqa: PLR0911, C901
    from lifecycle import tasks  # noqa: PLC0415

    run_id = f"bench-{night}"
    vars_ = ["--vars", json.dumps({"as_of": night})]
    refresh = ["--full-refresh"] if full_refresh else []
    if name.startswith("ingest_"):
        counts = tasks.ingest(name.removeprefix("ingest_"))
        return {
            "rows": int(
                sum(v for k, v in counts.items() if not k.startswith(("quarantine", "erasures")))
            ),
            "counts": counts,
        }
    if name == "erase":
        return tasks.erase()
    if name == "dbt_run":
        return _dbt(["build", "--exclude", "tag:predict", *NO_TESTS, *refresh, *vars_])
    if name == "predict":
        out = tasks.predict(night=night, run_id=run_id)
        return {k: v for k, v in out.items() if isinstance(v, int | float | str)}
    if name == "dbt_run_predict":
        return _dbt(["build", "--select", "tag:predict", *NO_TESTS, *refresh, *vars_])
    if name in ("quality_freshness", "quality_raw", "quality_marts"):
        return tasks.quality_check(name.removeprefix("quality_"), run_id, night)
    if name == "dbt_test":
        return _dbt(["test", *vars_])
    if name == "publish":
        return {"tables": len(tasks.publish(night=night, run_id=run_id))}
    if name == "activate":
        out: dict = {"erasures": tasks.propagate_erasures()}
        syncs = [tasks.sync(s["audience"], s["destination"]) for s in tasks.audience_syncs()]
        t0, waited = time.monotonic(), 0.0
        while True:
            state = tasks.finish_vendor_jobs(syncs)
            if state["running"] == 0:
                break
            if time.monotonic() - t0 > 1800:
                raise SystemExit("vendor jobs still running after 30 min")
            time.sleep(2)
            waited += 2
        syncs = state["syncs"]
        out["vendor_job_wait_s"] = waited
        out["rows"] = int(sum(s.get("sent", 0) or 0 for s in syncs))
        out["syncs"] = {
            f"{s['audience']}->{s['destination']}": {
                k: s.get(k) for k in ("audience_size", "sent", "accepted", "status")
            }
            for s in syncs
        }
        return out
    if name == "publish_syncs":
        return tasks.publish_syncs(night=night, run_id=run_id)
    if name == "raw_sql":
        return _raw_sql(
            Path(os.environ["BENCH_RAW_SQL_WAREHOUSE"]), Path(os.environ["BENCH_RAW_SQL_TARGET"])
        )
    raise SystemExit(f"unknown stage {name!r}")


FULL_NIGHT = (
    "ingest_hubspot",
    "ingest_segment",
    "ingest_mailchimp",
    "erase",
    "dbt_run",
    "predict",
    "dbt_run_predict",
    "quality_freshness",
    "quality_raw",
    "dbt_test",
    "quality_marts",
    "publish",
    "activate",
    "publish_syncs",
)
GROUPS = {
    "ingest": ("ingest_hubspot", "ingest_segment", "ingest_mailchimp", "erase"),
    "dbt": ("dbt_run", "dbt_run_predict"),
    "predict": ("predict",),
    "quality": ("quality_freshness", "quality_raw", "dbt_test", "quality_marts"),
    "publish": ("publish", "publish_syncs"),
    "activate": ("activate",),
}


def _model_order(manifest: dict) -> list[dict]:
    """Every non-ephemeral model, dependencies first (the order dbt may run them in)."""
    nodes = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    done: set[str] = set()
    order: list[dict] = []

    def visit(uid: str) -> None:
        if uid in done or uid not in nodes:
            return
        done.add(uid)
        for dep in nodes[uid]["depends_on"]["nodes"]:
            visit(dep)
        order.append(nodes[uid])

    for uid in sorted(nodes):
        visit(uid)
    return [n for n in order if n["config"]["materialized"] != "ephemeral"]


def _raw_sql(warehouse: Path, target: Path) -> dict:
    """Run every model's compiled SQL (the full refresh's, kept in ``target``) straight in
    DuckDB."""
    from lifecycle.warehouse import connect  # noqa: PLC0415

    manifest = json.loads((target / "manifest.json").read_text())
    con = connect(path=warehouse)
    built = 0
    try:
        for node in _model_order(manifest):
            compiled = target / "compiled" / node["package_name"] / node["original_file_path"]
            sql = compiled.read_text()
            kind = "view" if node["config"]["materialized"] == "view" else "table"
            con.execute(f'create schema if not exists "{node["schema"]}"')
            # a relation of the other kind by that name refuses `create or replace`
            other = con.execute(
                "select 'view' from duckdb_views() where schema_name = ? and view_name = ? "
                "union all select 'table' from duckdb_tables() "
                "where schema_name = ? and table_name = ?",
                [node["schema"], node["alias"], node["schema"], node["alias"]],
            ).fetchall()
            if other and other[0][0] != kind:
                con.execute(f"drop {other[0][0]} {node['relation_name']}")
            con.execute(f"create or replace {kind} {node['relation_name']} as {sql}")
            built += 1
    finally:
        con.close()
    return {"rows": built, "models": built}


def stage_main(args) -> int:
    out = _stage(args.stage, args.night, args.full_refresh)
    print(json.dumps(out, default=str))
    return 0


# --------------------------------------------------------------------------- measuring


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_stage(name: str, night: str, env: dict, log, full_refresh: bool = False) -> dict:
    """One stage in a child process: wall, CPU, peak tree memory and its JSON result."""
    cmd = [sys.executable, str(HERE / "scale.py"), "--stage", name, "--night", night]
    if full_refresh:
        cmd.append("--full-refresh")
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(ps))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"stage {name} failed (exit {proc.returncode}); see {log.name}")
    result = json.loads(stdout.strip().splitlines()[-1])
    rows = result.get("rows") if isinstance(result, dict) else None
    return {
        "stage": name,
        "wall_s": round(wall, 2),
        "cpu_s": round(_children_cpu() - cpu0, 2),
        "peak_mb": round(peak[0] / 2**20),
        "rows": rows,
        "rows_per_s": round(rows / wall) if rows else None,
        "result": result,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> dict:
    import requests  # noqa: PLC0415

    r = requests.get(url, timeout=60)
    r.raise_for_status()
    return r.json()


def _hubspot_floor(base_url: str, before: dict) -> dict:
    """Seconds the HubSpot requests of a load need at the emulated documented limits."""
    limits = _get(f"{base_url}/_sandbox/limits")
    stats = _get(f"{base_url}/_sandbox/stats")
    general = stats.get("hubspot_requests", 0) - before.get("hubspot_requests", 0)
    search = stats.get("hubspot_search_requests", 0) - before.get("hubspot_search_requests", 0)
    floor = max(general / (limits["hubspot_per_10s"] / 10), search / limits["hubspot_search_per_s"])
    return {
        "requests": general,
        "search_requests": search,
        "floor_s": round(floor, 1),
        "stats": stats,
    }


def _night(
    label: str,
    stages: tuple[str, ...],
    night: str,
    env: dict,
    log,
    base_url: str,
    full_refresh: bool,
    progress: str,
    checkpoint=None,
) -> dict:
    out: dict = {"night": night, "stages": {}}
    for name in stages:
        before = _get(f"{base_url}/_sandbox/stats") if name == "ingest_hubspot" else None
        print(f"  {progress} {label}: {name} ...", end="", flush=True)
        st = run_stage(name, night, env, log, full_refresh=full_refresh)
        if before is not None:
            st["floor"] = _hubspot_floor(base_url, before)
        print(
            f" {st['wall_s']:.1f}s, cpu {st['cpu_s']:.1f}s, peak {st['peak_mb']} MB"
            + (f", {st['rows']:,} rows" if st["rows"] else ""),
            flush=True,
        )
        out["stages"][name] = st
        if checkpoint:
            checkpoint(out)
    return out


def one_run(tier: str, index: int, runs: int, work: Path) -> dict:
    """Simulate, serve, run the full-refresh night, the raw-SQL reference, the next night."""
    from lifecycle.airflow_env import environment  # noqa: PLC0415
    from lifecycle.sandbox.server import connection_env  # noqa: PLC0415

    contacts = TIERS[tier]
    work.mkdir(parents=True, exist_ok=True)
    data, landing = work / "data", work / "data" / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    log = open(work / "stages.log", "w")  # noqa: SIM115 - closed below
    progress = f"[{tier} run {index}/{runs}]"
    port = _free_port()
    print(
        f"  {progress} simulating {contacts:,} contacts and landing their web files ...", flush=True
    )
    sandbox = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "scale_sandbox.py"),
            "--contacts",
            str(contacts),
            "--landing",
            str(landing),
            "--port",
            str(port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    measured: dict = {}

    def checkpoint(key: str):
        """Keep what is measured so far in <work>/progress.json: a run that cannot finish
        (a session ends, a stage fails) still leaves its figures."""

        def save(part) -> None:
            measured[key] = part
            (work / "progress.json").write_text(json.dumps(measured, indent=1, default=str))

        return save

    try:
        world = json.loads(sandbox.stdout.readline())
        checkpoint("world")(world)
        print(f"  {progress} world: {json.dumps(world)}", flush=True)
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **environment(ROOT, airflow_home=work / "airflow_home", data_dir=data),
            **connection_env(base_url, landing),
            "LIFECYCLE_WAREHOUSE_PATH": str(data / "warehouse.duckdb"),
            "LIFECYCLE_SERVING_PATH": str(data / "serving.duckdb"),
            "LIFECYCLE_LANDING_DIR": str(landing),
        }
        # a large account's setting: the listings that find contacts and members deleted
        # for good run weekly, not nightly (docs/ingestion.md, Erasure); the first night
        # sweeps, so the measured incremental night does not
        for var in ("AIRFLOW_CONN_HUBSPOT_DEFAULT", "AIRFLOW_CONN_MAILCHIMP_DEFAULT"):
            conn = json.loads(env[var])
            conn["extra"]["presence_check_every"] = PRESENCE_CHECK_EVERY
            env[var] = json.dumps(conn)
        first = datetime.fromtimestamp(world["first_night_ts"], UTC).date().isoformat()
        second = datetime.fromtimestamp(world["now_ts"], UTC).date().isoformat()
        full = _night(
            "full refresh",
            FULL_NIGHT,
            first,
            env,
            log,
            base_url,
            True,
            progress,
            checkpoint("full"),
        )

        # the raw-SQL reference runs on a copy of the full refresh's warehouse, after the
        # incremental night and with the sandbox stopped: the night's figures come first
        # (a run cut short keeps them) and the reference does not share memory with it
        raw_dir = work / "raw_sql"
        raw_dir.mkdir()
        shutil.copy(data / "warehouse.duckdb", raw_dir / "warehouse.duckdb")
        shutil.copytree(ROOT / "dbt_project" / "target", raw_dir / "target")

        sandbox.stdin.write("advance\n")
        sandbox.stdin.flush()
        landed = json.loads(sandbox.stdout.readline())
        print(f"  {progress} next day landed: {json.dumps(landed)}", flush=True)
        checkpoint("next_day")(landed)
        inc = _night(
            "incremental night",
            FULL_NIGHT,
            second,
            env,
            log,
            base_url,
            False,
            progress,
            checkpoint("incremental"),
        )
        changed = _changed_contacts(data / "warehouse.duckdb", first)
    finally:
        if sandbox.poll() is None:
            sandbox.stdin.write("quit\n")
            sandbox.stdin.flush()
            try:
                sandbox.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sandbox.kill()
        log.close()
    # the same SQL straight in DuckDB
    with open(work / "stages.log", "a") as log:
        print(f"  {progress} raw SQL reference ...", end="", flush=True)
        raw = run_stage(
            "raw_sql",
            first,
            {
                **env,
                "BENCH_RAW_SQL_WAREHOUSE": str(raw_dir / "warehouse.duckdb"),
                "BENCH_RAW_SQL_TARGET": str(raw_dir / "target"),
            },
            log,
        )
        checkpoint("raw_sql")(raw)
        print(f" {raw['wall_s']:.1f}s ({raw['rows']} models)", flush=True)
    shutil.rmtree(raw_dir)
    return {
        "world": world,
        "next_day": landed,
        "full": full,
        "raw_sql": raw,
        "incremental": inc,
        "contacts_changed": changed,
    }


def _changed_contacts(warehouse: Path, first_night: str) -> dict:
    import duckdb  # noqa: PLC0415

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        total, changed = con.execute(
            "select count(*), count(*) filter (where updated_at >= ?::timestamp) "
            "from staging.stg_hubspot__contacts",
            [first_night],
        ).fetchone()
    except duckdb.Error as exc:  # a column name the connector does not write
        return {"error": str(exc)}
    finally:
        con.close()
    return {
        "contacts": total,
        "changed_since_first_night": changed,
        "pct": round(100 * changed / total, 3) if total else None,
    }


# --------------------------------------------------------------------------- figures


def run_figures(run: dict) -> dict:
    """The issue's figures for one run. A partial run (``--from-progress``: stopped
    before its end) gets the figures whose stages it measured; the others are left out."""
    full = (run.get("full") or {}).get("stages") or {}
    inc = (run.get("incremental") or {}).get("stages") or {}
    raw = run.get("raw_sql")

    def total(stages: dict, names) -> float | None:
        if not all(n in stages for n in names):
            return None
        return round(sum(stages[n]["wall_s"] for n in names), 2)

    def peak(stages: dict, names) -> int | None:
        got = [stages[n]["peak_mb"] for n in names if n in stages]
        return max(got) if got and len(got) == len(names) else None

    def wait(stages: dict) -> float:
        return stages["activate"]["result"].get("vendor_job_wait_s", 0)

    out: dict = {}
    ingest_names = ("ingest_hubspot", "ingest_segment", "ingest_mailchimp")
    if "ingest_hubspot" in full:
        out["hubspot_ingest_s"] = full["ingest_hubspot"]["wall_s"]
        out["hubspot_floor_s"] = full["ingest_hubspot"]["floor"]["floor_s"]
    if "ingest_segment" in full:
        seg = full["ingest_segment"]
        events = seg["result"]["counts"].get("events", 0)
        out["segment_ingest_s"] = seg["wall_s"]
        out["segment_events_per_s"] = round(events / seg["wall_s"]) if seg["wall_s"] else None
        if "hubspot_floor_s" in out:
            out["ingest_floor_s"] = round(
                out["hubspot_floor_s"] + events / SEGMENT_FLOOR_EVENTS_PER_S, 1
            )
    if "ingest_mailchimp" in full:
        out["mailchimp_ingest_s"] = full["ingest_mailchimp"]["wall_s"]
    out["full_ingest_s"] = total(full, ingest_names)
    out["dbt_build_s"] = total(full, GROUPS["dbt"])
    if "dbt_test" in full:
        out["dbt_test_s"] = full["dbt_test"]["wall_s"]
    if raw:
        out["raw_sql_s"] = raw["wall_s"]
        if out["dbt_build_s"]:
            out["dbt_to_raw_sql"] = round(out["dbt_build_s"] / raw["wall_s"], 2)
    out["quality_s"] = total(full, GROUPS["quality"])
    out["quality_peak_mb"] = peak(full, GROUPS["quality"])
    out["full_night_s"] = total(full, FULL_NIGHT)
    if full:
        out["full_night_peak_mb"] = max(st["peak_mb"] for st in full.values())
    out["incremental_night_s"] = total(inc, FULL_NIGHT)
    if out["incremental_night_s"] is not None:
        out["incremental_vendor_wait_s"] = wait(inc)
        out["incremental_work_s"] = round(out["incremental_night_s"] - wait(inc), 2)
        out["incremental_dbt_s"] = total(inc, GROUPS["dbt"])
        out["incremental_quality_s"] = total(inc, GROUPS["quality"])
        out["night_peak_mb"] = peak(inc, FULL_NIGHT)
        out["incremental_events"] = inc["ingest_segment"]["result"]["counts"].get("events", 0)
    return {k: v for k, v in out.items() if v is not None}


def from_progress(work: Path, extra: dict | None = None) -> Path:
    """A results file from a run that did not finish: ``<work>/run1/progress.json``
    (written after every stage) becomes ``bench/results/<date>-<tier>.json`` with
    ``partial: true`` and the stages it never reached listed in ``not_measured``."""
    progress = json.loads((work / "run1" / "progress.json").read_text())
    contacts = progress["world"]["contacts"]
    tier = next(t for t, n in TIERS.items() if n == contacts)
    run = dict(progress)
    run["figures"] = run_figures(run)
    done = [f"full:{n}" for n in (progress.get("full") or {}).get("stages", {})]
    done += ["raw_sql"] if progress.get("raw_sql") else []
    done += [f"incremental:{n}" for n in (progress.get("incremental") or {}).get("stages", {})]
    every = (
        [f"full:{n}" for n in FULL_NIGHT] + [f"incremental:{n}" for n in FULL_NIGHT] + ["raw_sql"]
    )
    figures = dict(run["figures"])
    extra = extra or {}
    figures.update({k: v for k, v in extra.items() if not isinstance(v, dict | list)})
    for key in FIGURES:
        figures.setdefault(key, None)
    stamp = datetime.fromtimestamp((work / "run1" / "progress.json").stat().st_mtime, UTC)
    out = {
        "scale": tier,
        "contacts": contacts,
        "runs": 1,
        "partial": True,
        "not_measured": [n for n in every if n not in done],
        "measured_at": f"{stamp:%Y-%m-%d %H:%M} UTC",
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
        },
        "versions": _versions(),
        "settings": SETTINGS,
        "figures": figures,
        "extra": extra,
        "run_details": [run],
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{out['measured_at'][:10]}-{tier}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    return path


def _median(values: list):
    nums = [v for v in values if isinstance(v, int | float)]
    if not nums:
        return None
    m = statistics.median(nums)
    return round(m, 2) if isinstance(m, float) else m


def _versions() -> dict:
    from importlib.metadata import version  # noqa: PLC0415

    out = {"python": platform.python_version()}
    for pkg in (
        "duckdb",
        "dbt-core",
        "dbt-duckdb",
        "apache-airflow",
        "pandas",
        "great-expectations",
    ):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            out[pkg] = None
    return out


def _audience_figures() -> dict:
    print("  audience diff, 1,000,000 members (bench_sync.py) ...", flush=True)
    proc = subprocess.run(
        [sys.executable, str(HERE / "bench_sync.py")],
        env={**os.environ, "BENCH_SYNC_WORLD": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    fig = json.loads(proc.stdout[proc.stdout.index("{") :])["figures"]
    return {
        "audience_diff_1m_s": fig["1% changed (0.5% leave + 0.5% join): diff only seconds"],
        "audience_sent_pct": fig["1% changed: records sent, % of audience"],
        "audience_churn_diff_1m_s": fig["1% churn: diff only (dry run) seconds"],
        "audience_unchanged_rerun_1m_s": fig["unchanged re-run: seconds"],
    }


def _demo_figures() -> dict:
    """`make demo`'s DAG time: from its "running DAG" line to its "done" line."""
    print("  the demo night (lifecycle demo) ...", flush=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifecycle.cli", "demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    started = ended = None
    tasks = 0
    for line in proc.stdout:
        if re.match(r"\[4/5\] running DAG", line):
            started = time.perf_counter()
        elif re.match(r"\[5/5\]", line):
            ended = time.perf_counter()
        elif re.match(r"\s+success\s", line):
            tasks += 1
    if proc.wait() != 0 or started is None or ended is None:
        return {"demo_dag_s": None, "demo_error": f"lifecycle demo exited {proc.returncode}"}
    return {"demo_dag_s": round(ended - started, 1), "demo_tasks_succeeded": tasks}


def _pandas_figures(warehouse: Path, night: str, pipeline_s: float) -> dict:
    print("  pandas reference (scale_pandas.py) ...", flush=True)
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "scale_pandas.py"),
            "--warehouse",
            str(warehouse),
            "--night",
            night,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    ref["pipeline_same_models_s"] = pipeline_s
    ref["pandas_ratio"] = round(ref["pandas_s"] / pipeline_s, 2) if pipeline_s else None
    return ref


def main(argv: list[str] | None = None) -> int:  # noqa: C901, PLR0915
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(TIERS), help="s (10k), m (100k), l (1M)")
    parser.add_argument("--runs", type=int, help="runs to take the median of (s, m: 3; l: 1)")
    parser.add_argument("--work", type=Path, help="work folder (default: a temp folder, removed)")
    parser.add_argument("--no-demo", action="store_true", help="skip the demo DAG timing")
    parser.add_argument("--no-audience", action="store_true", help="skip the 1M audience diff")
    parser.add_argument("--no-pandas", action="store_true", help="skip the pandas reference")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite REPORT.md's Scale section from bench/results/*.json",
    )
    parser.add_argument(
        "--from-progress",
        type=Path,
        metavar="WORK",
        help="write a partial results file from a --work folder whose run did not finish "
        "(its run1/progress.json; the audience diff and demo timing run now unless "
        "--no-audience / --no-demo), then rewrite the report",
    )
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--night", help=argparse.SUPPRESS)
    parser.add_argument("--full-refresh", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        return stage_main(args)
    if args.report_only:
        write_report()
        return 0
    if args.from_progress:
        extra: dict = {}
        if not args.no_audience:
            extra.update(_audience_figures())
        if not args.no_demo:
            extra.update(_demo_figures())
        print(f"partial results written to {from_progress(args.from_progress, extra)}")
        write_report()
        return 0
    if not args.scale:
        parser.error("--scale s|m|l is required (make bench SCALE=s)")
    tier, runs = args.scale, args.runs or RUNS[args.scale]
    work = args.work or Path(tempfile.mkdtemp(prefix=f"bench-scale-{tier}-"))
    print(f"scale {tier}: {TIERS[tier]:,} contacts, {runs} run(s), work folder {work}", flush=True)
    t0 = time.perf_counter()
    results = []
    pandas = None
    for i in range(1, runs + 1):
        run_dir = work / f"run{i}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run = one_run(tier, i, runs, run_dir)
        run["figures"] = run_figures(run)
        print(f"  [{tier} run {i}/{runs}] figures: {json.dumps(run['figures'])}", flush=True)
        results.append(run)
        if i == 1 and tier in ("s", "m") and not args.no_pandas:
            # the full refresh's run_results were overwritten by later nights: the
            # reference times its models against a fresh full-refresh run of them
            pandas = _pandas_vs_pipeline(run_dir, run["incremental"]["night"])
        if i < runs or not args.work:
            shutil.rmtree(run_dir / "data", ignore_errors=True)
    figures = {k: _median([r["figures"].get(k) for r in results]) for k in results[0]["figures"]}
    extra: dict = {}
    if not args.no_audience:
        extra.update(_audience_figures())
    if not args.no_demo:
        extra.update(_demo_figures())
    if pandas:
        extra.update(pandas)
    figures.update({k: v for k, v in extra.items() if not isinstance(v, dict | list)})
    for key in FIGURES:
        figures.setdefault(key, None)
    out = {
        "scale": tier,
        "contacts": TIERS[tier],
        "runs": runs,
        "measured_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "machine": {
            "cores": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": _versions(),
        "settings": SETTINGS,
        "figures": figures,
        "extra": extra,
        "bench_wall_s": round(time.perf_counter() - t0, 1),
        "run_details": results,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{tier}.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"results written to {path}")
    print(json.dumps(figures, indent=1))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    write_report()
    return 0


def _pandas_vs_pipeline(run_dir: Path, night: str) -> dict | None:
    """The pandas reference against the pipeline's own time for the same models."""
    from scale_pandas import PIPELINE_MODELS  # noqa: PLC0415

    warehouse = run_dir / "data" / "warehouse.duckdb"
    project = str(ROOT / "dbt_project")
    # the pipeline's time for the same work: those models' full-refresh build, timed as
    # dbt reports each node (its fixed start-up not counted, in the pipeline's favour
    # of nothing: the pandas side does not count its imports either)
    proc = subprocess.run(
        [
            DBT,
            "run",
            "--full-refresh",
            "--select",
            *PIPELINE_MODELS,
            "--vars",
            json.dumps({"as_of": night}),
            "--project-dir",
            project,
            "--profiles-dir",
            project,
        ],
        env={**os.environ, "LIFECYCLE_WAREHOUSE_PATH": str(warehouse)},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stdout[-2000:])
        return {"pandas_error": "dbt run of the reference models failed"}
    results = json.loads((ROOT / "dbt_project" / "target" / "run_results.json").read_text())
    pipeline_s = round(sum(r["execution_time"] for r in results["results"]), 2)
    return _pandas_figures(warehouse, night, pipeline_s)


# --------------------------------------------------------------------------- report


def _load_results() -> dict[str, dict]:
    """The newest results file per tier."""
    latest: dict[str, dict] = {}
    for path in sorted(RESULTS.glob("*-[sml].json")):
        data = json.loads(path.read_text())
        data["_file"] = path.name
        latest[data["scale"]] = data
    return latest


def _svg_chart(latest: dict[str, dict]) -> str:
    """Seconds per stage group against contacts, log-log, one line per group."""
    import math  # noqa: PLC0415

    series: dict[str, list[tuple[int, float]]] = {}
    for tier in ("s", "m", "l"):
        if tier not in latest:
            continue
        data = latest[tier]
        run = data["run_details"][0]["full"]["stages"]
        for group, names in GROUPS.items():
            if not all(n in run for n in names):  # a partial run that stopped before it
                continue
            secs = sum(run[n]["wall_s"] for n in names)
            series.setdefault(group, []).append((data["contacts"], max(secs, 0.1)))
    w, h, pad = 640, 400, 60
    xs = [math.log10(c) for c in (10_000, 100_000, 1_000_000)]
    ys_all = [s for pts in series.values() for _, s in pts] or [1]
    ylo, yhi = math.floor(math.log10(min(ys_all))), math.ceil(math.log10(max(ys_all)))
    yhi = max(yhi, ylo + 1)

    def px(c: float) -> float:
        return pad + (math.log10(c) - xs[0]) / (xs[-1] - xs[0]) * (w - 2 * pad)

    def py(s: float) -> float:
        return h - pad - (math.log10(s) - ylo) / (yhi - ylo) * (h - 2 * pad)

    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{w / 2}" y="20" text-anchor="middle">Full-refresh night: seconds per '
        "stage against contacts (log-log; slope 1 = linear)</text>",
    ]
    for c, label in ((10_000, "10k (s)"), (100_000, "100k (m)"), (1_000_000, "1M (l)")):
        out.append(f'<line x1="{px(c)}" y1="{pad}" x2="{px(c)}" y2="{h - pad}" stroke="#ddd"/>')
        out.append(f'<text x="{px(c)}" y="{h - pad + 18}" text-anchor="middle">{label}</text>')
    for e in range(ylo, yhi + 1):
        y = py(10**e)
        out.append(f'<line x1="{pad}" y1="{y}" x2="{w - pad}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{pad - 6}" y="{y + 4}" text-anchor="end">{10**e:g} s</text>')
    for i, (group, pts) in enumerate(sorted(series.items())):
        color = colors[i % len(colors)]
        path = " ".join(f"{px(c):.1f},{py(s):.1f}" for c, s in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for c, s in pts:
            out.append(f'<circle cx="{px(c):.1f}" cy="{py(s):.1f}" r="3" fill="{color}"/>')
        out.append(
            f'<text x="{w - pad + 4}" y="{py(pts[-1][1]) + 4:.1f}" fill="{color}">{group}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _verdict(key: str, value) -> str:
    if key not in TARGETS or not isinstance(value, int | float):
        return ""
    bound, kind = TARGETS[key]
    ok = value <= bound if kind == "max" else value >= bound
    if ok:
        return f"met ({'≤' if kind == 'max' else '≥'} {bound:g})"
    miss = value / bound if kind == "max" else bound / value
    return f"**missed** ({'≤' if kind == 'max' else '≥'} {bound:g}; {miss:.2f}× off)"


def write_report() -> None:
    latest = _load_results()
    if not latest:
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.svg").write_text(_svg_chart(latest))
    tiers = [t for t in ("s", "m", "l") if t in latest]
    keys = list(FIGURES) + [
        k
        for k in (
            "dbt_to_raw_sql",
            "incremental_work_s",
            "ingest_to_floor",
            "hubspot_ingest_s",
            "hubspot_floor_s",
            "segment_ingest_s",
            "mailchimp_ingest_s",
            "dbt_test_s",
            "full_night_s",
            "full_night_peak_mb",
            "incremental_dbt_s",
            "incremental_quality_s",
            "incremental_events",
        )
    ]
    for t in tiers:
        f = latest[t]["figures"]
        if f.get("full_ingest_s") and f.get("ingest_floor_s"):
            f["ingest_to_floor"] = round(f["full_ingest_s"] / f["ingest_floor_s"], 2)
    lines = [
        "## Scale: the whole night at 10k, 100k and 1M contacts",
        "",
        "_Written by `make bench SCALE=s|m|l` (bench/scale.py) from "
        + ", ".join(f"`bench/results/{latest[t]['_file']}`" for t in tiers)
        + "._",
        "",
        "| figure | "
        + " | ".join(
            f"{t} ({latest[t]['contacts']:,}; {latest[t]['runs']} run"
            f"{'s' if latest[t]['runs'] > 1 else ''}"
            f"{', partial' if latest[t].get('partial') else ''})"
            for t in tiers
        )
        + " | target (judged on the largest tier that has the figure) |",
        "|---|" + "---|" * len(tiers) + "---|",
    ]
    for k in keys:
        vals = [latest[t]["figures"].get(k) for t in tiers]
        if all(v is None for v in vals):
            continue
        # judged on the largest tier that measured it (a partial l run may not have)
        judged = [(t, v) for t, v in zip(tiers, vals, strict=True) if v is not None][-1]
        verdict = _verdict(k, judged[1])
        if verdict and judged[0] != tiers[-1]:
            verdict += f" (at {judged[0]})"
        lines.append(
            f"| {k} | "
            + " | ".join(
                "–"
                if v is None
                else f"{v:,}"
                if isinstance(v, int)
                else f"{v:g}"
                if isinstance(v, float)
                else str(v)
                for v in vals
            )
            + f" | {verdict} |"
        )
    lines += [
        "",
        "How the figures are defined: each stage runs in its own process (as Airflow runs "
        "a task), timed from start to exit, so every figure includes its process start-up "
        "(about 2 s for a dbt call, 1 s for Python). `full_ingest_s`: the three ingests "
        "of the full-refresh night, one after another. `ingest_floor_s`: the seconds the "
        "vendors' documented limits allow at best: HubSpot's requests of that load at 150 "
        "per 10 s (search at 4/s), read from the sandbox's limits and request counts, plus "
        "the Segment events at 200,000/s; Mailchimp documents no request rate (only 10 "
        "concurrent connections), so it adds nothing. `dbt_build_s`: seeds and models of "
        "the full refresh (both dbt calls, tests not included); `raw_sql_s`: the same "
        "compiled SQL, model by model in dependency order, as `create or replace` in one "
        "DuckDB connection on a copy of the warehouse. `quality_s`: freshness, GE raw "
        "suites, `dbt test`, GE mart suites; `quality_peak_mb` the largest of them. "
        "`incremental_night_s`: every stage of the next night (one new day, the late "
        "files and appends of earlier days); `incremental_work_s` leaves out the time "
        "spent waiting for Google Ads' Customer Match job (the vendor's time, about a "
        "minute in the sandbox). `night_peak_mb`: the largest stage of that night (stages "
        "run one after another). `audience_diff_1m_s` / `audience_sent_pct`: "
        "`bench_sync.py`'s 1,000,000-member audience with 1% of members changed (0.5% "
        "leave, as many join), diff only / records sent. `pandas_ratio`: "
        "`bench/scale_pandas.py` (sessionization and lead scores in pandas, its output "
        "checked against the models') over dbt's node time for `int_sessions` and "
        "`int_lead_scores` on the same warehouse.",
        "",
        "![seconds per stage against contacts, log-log](results/scale.svg)",
        "",
        "Stages per tier (first run, full refresh then incremental night; wall s / peak MB):",
        "",
    ]
    sweep = {t: (latest[t].get("settings") or {}).get("presence_check_every", 1) for t in tiers}
    lines[-4:-4] = [
        "The listings that find records deleted for good (HubSpot contact ids, one request "
        "per 100 contacts; Mailchimp members, one per 1,000) run in the incremental night at "
        + (", ".join(t for t in tiers if sweep[t] <= 1) or "no tier")
        + " (`presence_check_every: 1`, results measured before it could be set) and not "
        "at "
        + (", ".join(f"{t} (every {sweep[t]} runs)" for t in tiers if sweep[t] > 1) or "any")
        + ": there a sweep night adds them (at l 10,000 HubSpot requests, 667 s at 150 per "
        "10 s, and 1,000 Mailchimp requests).",
        "",
    ]
    for t in tiers:
        run = latest[t]["run_details"][0]
        inc = (run.get("incremental") or {}).get("stages") or {}
        lines.append(
            f"- **{t}**: world {run['world']['simulate_s']} s to simulate, "
            f"{run['world']['land_s']} s to land {run['world']['events_landed']:,} events "
            f"(not pipeline time; the sandbox peaked at {run['world']['peak_mb']:,} MB); "
            + "; ".join(
                f"{n} {st['wall_s']}/{st['peak_mb']}"
                + (f" vs {inc[n]['wall_s']}" if n in inc else "")
                for n, st in run["full"]["stages"].items()
            )
        )
        if latest[t].get("partial"):
            missing = latest[t]["not_measured"]
            full_missing = [n.split(":", 1)[1] for n in missing if n.startswith("full:")]
            parts = [f"the full night's {', '.join(full_missing)}"] if full_missing else []
            parts += ["the raw-SQL reference"] if "raw_sql" in missing else []
            inc_missing = [n for n in missing if n.startswith("incremental:")]
            if len(inc_missing) == len(FULL_NIGHT):
                parts.append("the whole incremental night")
            elif inc_missing:
                parts.append(f"the incremental night's {', '.join(inc_missing)}")
            lines.append(
                f"  - **partial run**: it did not reach {'; '.join(parts)} (– in the table above)."
            )
    report = HERE / "REPORT.md"
    text = report.read_text() if report.exists() else "# Benchmark report\n"
    section = "\n".join(lines) + "\n"
    marker = "## Scale: the whole night"
    if marker in text:
        head, rest = text.split(marker, 1)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1 :] if nxt >= 0 else ""
    else:
        head, sep, rest = text.partition("\n## ")
        head, after = head.rstrip("\n") + "\n\n", ("## " + rest if sep else "")
    # a blank line between this section and the next one's heading
    text = head + section + ("\n" + after if after else "")
    report.write_text(text)
    print(f"report written to {report}")


if __name__ == "__main__":
    sys.exit(main())
