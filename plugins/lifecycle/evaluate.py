"""Score the lifecycle model against the simulator's ground truth.

``evaluate()`` simulates a world, serves it on a free loopback port, ingests it with the
real connectors into a fresh DuckDB warehouse, runs ``dbt build`` for the world's night
and compares the marts with what the simulator knows really happened:

- ``stage_agreement``: share of the contacts in the CRM on the run date whose
  ``dim_contacts.lifecycle_stage`` equals their true stage on that date.
- ``lead_score_auc``: ROC AUC of ``dim_contacts.lead_score`` for "becomes a customer
  within 30 days", among contacts whose true stage on the run date is lead or MQL.
- ``identity_precision`` / ``identity_recall``: among the web events (before the night)
  of people who are in the CRM, the share of attributed events attributed to the right
  contact, and the share of all their events attributed to the right contact.

The pure metric functions (:func:`roc_auc`, :func:`stage_agreement`,
:func:`identity_scores`) take plain data so they are unit-tested on their own.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from lifecycle.config import settings

log = logging.getLogger(__name__)

#: The thresholds the issue sets for a 10,000-contact world.
TARGETS = {
    "stage_agreement": 0.95,
    "lead_score_auc": 0.80,
    "identity_recall": 0.98,
    "identity_precision": 1.0,
}
SCORED_STAGES = ("lead", "mql")


class EvaluationError(RuntimeError):
    """A step of the evaluation (ingest, dbt build) failed; the message says which."""


# --------------------------------------------------------------------------- metrics


def roc_auc(scores: Iterable[float], labels: Iterable[bool]) -> float:
    """ROC AUC by the Mann-Whitney rank statistic; ties count one half.

    Raises ``ValueError`` when there are no positives or no negatives (AUC is undefined).
    """
    s = pd.Series(list(scores), dtype="float64")
    y = np.asarray(list(labels), dtype=bool)
    if len(s) != len(y):
        raise ValueError(f"scores ({len(s)}) and labels ({len(y)}) differ in length")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs positives and negatives (got {n_pos} / {n_neg})")
    ranks = s.rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def stage_agreement(model: Mapping[str, str], truth: Mapping[str, str]) -> float:
    """Share of ``truth``'s contacts whose modelled stage equals the true one."""
    if not truth:
        raise ValueError("no contacts in the ground truth")
    return sum(model.get(cid) == stage for cid, stage in truth.items()) / len(truth)


def identity_scores(attributed: pd.DataFrame, true_contact: pd.DataFrame) -> dict[str, float]:
    """Precision and recall of event attribution.

    ``attributed``: event_id, contact_id (null = unattributed), the model's output.
    ``true_contact``: event_id, contact_id, the person each event really came from, only
    for the events that should be attributed (people known to the CRM).
    """
    merged = true_contact.merge(attributed, on="event_id", how="left", suffixes=("_true", "_model"))
    if merged.empty:
        raise ValueError("no events of identified people to score")
    has = merged.contact_id_model.notna()
    right = has & (merged.contact_id_model == merged.contact_id_true)
    n_attr = int(has.sum())
    return {
        "identity_precision": float(right.sum() / n_attr) if n_attr else 0.0,
        "identity_recall": float(right.sum() / len(merged)),
        "identity_events": len(merged),
        "identity_wrong": int((has & ~right).sum()),
    }


# --------------------------------------------------------------------------- pipeline


@dataclass(frozen=True)
class Paths:
    """Where one evaluation writes: a throw-away data folder of its own."""

    root: Path

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def env(self) -> dict[str, str]:
        return {
            "LIFECYCLE_DATA_DIR": str(self.root),
            "LIFECYCLE_WAREHOUSE_PATH": str(self.warehouse),
            "LIFECYCLE_SERVING_PATH": str(self.root / "serving.duckdb"),
            "LIFECYCLE_LANDING_DIR": str(self.landing),
            "LIFECYCLE_DLT_DIR": str(self.root / "dlt"),
            "DLT_DATA_DIR": str(self.root / "dlt"),
            "LIFECYCLE_DBT_TARGET": "duckdb",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DO_NOT_TRACK": "1",
        }


def dbt_build(paths: Paths, as_of: str, progress: Callable[[str], None]) -> None:
    """``dbt build`` (seeds, models, tests) in-process for the night ``as_of``."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 - heavy import

    project = settings().dbt_project_dir
    args = [
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(paths.root / "dbt_target"),
        "--log-path",
        str(paths.root / "dbt_logs"),
        "--vars",
        f"{{as_of: '{as_of}'}}",
        "--target",
        "duckdb",
        "--quiet",
    ]
    counts = {"ok": 0}

    def on_event(event) -> None:
        if event.info.name in ("LogModelResult", "LogSeedResult", "LogTestResult"):
            counts["ok"] += 1
            if counts["ok"] % 25 == 0:
                progress(f"    dbt: {counts['ok']} nodes done")

    result = dbtRunner(callbacks=[on_event]).invoke(args)
    if not result.success:
        failed = []
        for r in getattr(result.result, "results", None) or []:
            if str(r.status) not in ("success", "pass", "RunStatus.Success", "TestStatus.Pass"):
                failed.append(f"{r.node.name}: {r.status} {r.message or ''}".strip())
        raise EvaluationError(
            "dbt build failed"
            + (": " + "; ".join(failed[:10]) if failed else f": {result.exception}")
            + f" (logs in {paths.root / 'dbt_logs'})"
        )
    progress(f"    dbt: {counts['ok']} nodes built and tested")


def score(world, warehouse: Path) -> dict:
    """The figures, from the warehouse built for ``world``'s night."""
    import duckdb  # noqa: PLC0415

    from lifecycle.sandbox.accounts import gone_at_first_load  # noqa: PLC0415
    from lifecycle.sandbox.world import truth_table  # noqa: PLC0415

    truth = truth_table(world)
    truth = truth[truth.is_known_at_now]
    # archived / deleted at the vendors (issue 10): rightly absent from every mart
    erased = gone_at_first_load(world, world.now_ts)
    truth = truth[~truth.person.isin(erased)]
    con = duckdb.connect(str(warehouse))  # dbt-duckdb may still hold it in-process
    try:
        dim = con.execute(
            "select contact_id, lifecycle_stage, lead_score from marts.dim_contacts"
        ).df()
        attributed = con.execute(
            "select event_id, contact_id from intermediate.int_events_attributed"
        ).df()
    finally:
        con.close()

    model_stage = dict(zip(dim.contact_id, dim.lifecycle_stage, strict=True))
    true_stage = dict(zip(truth.hubspot_id, truth.stage_at_now, strict=True))

    scored = truth[truth.stage_at_now.isin(SCORED_STAGES)].merge(
        dim[["contact_id", "lead_score"]], left_on="hubspot_id", right_on="contact_id"
    )
    auc = roc_auc(scored.lead_score, scored.is_customer_within_30d)

    # Web events of people in the CRM: each must go to that person's contact.
    known = world.contacts.loc[
        world.contacts.is_known
        & (world.contacts.subscriber_at < world.now_ts)
        & ~world.contacts.person.isin(erased),
        ["person", "hubspot_id"],
    ]
    events = world.events[["message_id", "person"]].merge(known, on="person")
    events = events[events.message_id.isin(attributed.event_id)]
    true_contact = events.rename(columns={"message_id": "event_id", "hubspot_id": "contact_id"})
    ident = identity_scores(attributed, true_contact[["event_id", "contact_id"]])

    return {
        "stage_agreement": round(stage_agreement(model_stage, true_stage), 4),
        "lead_score_auc": round(auc, 4),
        "identity_precision": round(ident["identity_precision"], 4),
        "identity_recall": round(ident["identity_recall"], 4),
        "contacts": len(true_stage),
        "scored_leads_and_mqls": len(scored),
        "scored_positives": int(scored.is_customer_within_30d.sum()),
        "identity_events": ident["identity_events"],
        "identity_wrong": ident["identity_wrong"],
    }


def evaluate(
    contacts: int,
    seed: int = 42,
    now: date = date(2026, 7, 1),
    workdir: Path | None = None,
    keep: bool = False,
    progress: Callable[[str], None] = print,
) -> dict:
    """Simulate, serve, ingest, build and score one world; return the figures."""
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare  # noqa: PLC0415
    from lifecycle.sandbox.world import WorldConfig  # noqa: PLC0415
    from lifecycle.tasks import SOURCES, ingest  # noqa: PLC0415

    t0 = time.monotonic()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lifecycle-evaluate-"))
    if workdir and root.exists() and any(root.iterdir()):
        raise EvaluationError(f"--workdir {root} is not empty: give a new or empty folder")
    root.mkdir(parents=True, exist_ok=True)
    paths = Paths(root)
    saved = {k: os.environ.get(k) for k in paths.env()}
    os.environ.update(paths.env())

    def step(text: str) -> None:
        progress(f"[{time.monotonic() - t0:6.1f}s] {text}")

    try:
        step(f"simulating {contacts} contacts (seed {seed}, night {now.isoformat()}) in {root}")
        world = prepare(WorldConfig(contacts=contacts, seed=seed, now=now), paths.landing)
        with SandboxServer(world) as srv:
            conn_env = connection_env(srv.base_url, paths.landing)
            saved.update({k: os.environ.get(k) for k in conn_env})
            os.environ.update(conn_env)
            for source in SOURCES:
                step(f"ingesting {source} from the sandbox at {srv.base_url}")
                try:
                    loaded = ingest(source)
                except Exception as exc:
                    raise EvaluationError(f"ingesting {source} failed: {exc}") from exc
                step(f"    {source}: {loaded}")
        step("dbt build (seeds, models, tests)")
        dbt_build(paths, now.isoformat(), step)
        step("scoring against the simulator's ground truth")
        figures = score(world, paths.warehouse)
        figures["seconds"] = round(time.monotonic() - t0, 1)
        return figures
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if keep:
            progress(f"kept the evaluation's warehouse: {paths.warehouse}")
        else:
            shutil.rmtree(root, ignore_errors=True)
