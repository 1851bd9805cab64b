"""The learned lead score against the rules score on a simulated world's ground truth.

Same world, pipeline, population and label as ``lifecycle evaluate``'s
``lead_score_auc`` (the ``realistic`` noise profile by default; contacts whose true
stage on the night is lead or MQL, people the vendors archived or deleted left out;
positive = a deal opens or a purchase happens within 30 days): simulate, serve, ingest
over HTTP, ``dbt build``, then the nightly ``predict`` task, and the ROC AUC of
``dim_contacts.lead_score`` beside that of the learned ``conversion_probability``. The
AUCs against "first purchase within 30 days" are reported too. The world's truth is
only read to score.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from lifecycle.evaluate import SCORED_STAGES, Paths, dbt_build, roc_auc
from lifecycle.warehouse import connect


def evaluate(
    contacts: int,
    seed: int = 42,
    now: date = date(2026, 7, 1),
    profile: str = "realistic",
    workdir: Path | None = None,
    progress: Callable[[str], None] = print,
) -> dict:
    from lifecycle.predict.nightly import run as run_predict  # noqa: PLC0415
    from lifecycle.sandbox.accounts import gone_at_first_load  # noqa: PLC0415
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare  # noqa: PLC0415
    from lifecycle.sandbox.world import WorldConfig, truth_table  # noqa: PLC0415
    from lifecycle.tasks import SOURCES, ingest  # noqa: PLC0415

    t0 = time.monotonic()
    root = Path(workdir or tempfile.mkdtemp(prefix="lifecycle-leads-"))
    root.mkdir(parents=True, exist_ok=True)
    paths = Paths(root)
    saved = {k: os.environ.get(k) for k in paths.env()}
    os.environ.update(paths.env())

    def step(text: str) -> None:
        progress(f"[{time.monotonic() - t0:6.1f}s] {text}")

    try:
        step(f"simulating {contacts} contacts (seed {seed}, {profile} profile) in {root}")
        config = WorldConfig(contacts=contacts, seed=seed, now=now, profile=profile)
        world = prepare(config, paths.landing)
        with SandboxServer(world) as srv:
            env = connection_env(srv.base_url, paths.landing)
            saved.update({k: os.environ.get(k) for k in env})
            os.environ.update(env)
            for source in SOURCES:
                step(f"ingesting {source}")
                ingest(source)
        step("dbt build")
        dbt_build(paths, now.isoformat(), step)
        step("predict (fit the learned lead score on the warehouse's history)")
        con = connect(path=paths.warehouse)
        try:
            fit = run_predict(con, now.isoformat())
            dim = con.execute("select contact_id, lead_score from marts.dim_contacts").df()
            learned = con.execute(
                "select contact_id, conversion_probability from predict.lead_predictions"
            ).df()
            holdout = con.execute(
                "select metrics from ops.predict_fits where model = 'lead_score' "
                "and night = ?::date",
                [now.isoformat()],
            ).fetchone()
        finally:
            con.close()
        truth = truth_table(world)
        truth = truth[truth.is_known_at_now & truth.stage_at_now.isin(SCORED_STAGES)]
        truth = truth[~truth.person.isin(gone_at_first_load(world, world.now_ts))]
        # as lifecycle evaluate: a contact the marts miss scores 0 (rules) / 0 (learned)
        scored = truth.merge(dim, left_on="hubspot_id", right_on="contact_id", how="left").merge(
            learned, on="contact_id", how="left"
        )
        rules = scored.lead_score.fillna(0)
        learned_p = scored.conversion_probability.fillna(0)
        ready, bought = scored.is_sales_ready_within_30d, scored.is_customer_within_30d
        return {
            "profile": profile,
            "label": "sales_ready_within_30d",
            "rules_auc": round(roc_auc(rules, ready), 4),
            "predictive_auc": round(roc_auc(learned_p, ready), 4),
            "scored": len(scored),
            "positives": int(ready.sum()),
            "rules_auc_customer_30d": round(roc_auc(rules, bought), 4),
            "predictive_auc_customer_30d": round(roc_auc(learned_p, bought), 4),
            "positives_customer_30d": int(bought.sum()),
            "lead_fit_status": fit["fits"].get("lead_score:all"),
            "nightly_holdout": holdout[0] if holdout else None,
            "contacts": contacts,
            "seed": seed,
            "seconds": round(time.monotonic() - t0, 1),
        }
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)
