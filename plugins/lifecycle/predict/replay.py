"""Run the pipeline on the CDNOW replay world and keep its warehouse (``lifecycle predict
--replay-cdnow``): serve the world, ingest it over HTTP with the real connectors, ``dbt
build`` its last night (2026-07-01: CDNOW's 1998-07-01 moved 28 years on), run the
nightly ``predict`` task with the papers' 39-week holdout and build the predict marts.
``lifecycle predict --report`` then prints the figures. (``lifecycle demo --world cdnow``
runs the same night through the Airflow DAG.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from lifecycle.evaluate import Paths, dbt_build
from lifecycle.warehouse import connect


def replay(workdir: Path, seed: int = 42, progress: Callable[[str], None] = print) -> Path:
    from lifecycle.predict.nightly import run as run_predict  # noqa: PLC0415
    from lifecycle.sandbox import cdnow  # noqa: PLC0415
    from lifecycle.sandbox.server import SandboxServer, connection_env, prepare  # noqa: PLC0415
    from lifecycle.tasks import SOURCES, ingest  # noqa: PLC0415

    t0 = time.monotonic()
    paths = Paths(Path(workdir))
    paths.root.mkdir(parents=True, exist_ok=True)
    night = cdnow.NOW.isoformat()
    saved = {k: os.environ.get(k) for k in paths.env()}
    os.environ.update(paths.env())

    def step(text: str) -> None:
        progress(f"[{time.monotonic() - t0:6.1f}s] {text}")

    try:
        step(f"CDNOW replay world (night {night}) in {paths.root}")
        world = prepare(cdnow.config(seed), paths.landing, world="cdnow")
        with SandboxServer(world) as srv:
            env = connection_env(srv.base_url, paths.landing)
            saved.update({k: os.environ.get(k) for k in env})
            os.environ.update(env)
            for source in SOURCES:
                step(f"ingesting {source}")
                step(f"    {source}: {ingest(source)}")
        step("dbt build")
        dbt_build(paths, night, step)
        step(f"predict (calibration holdout {cdnow.HOLDOUT_DAYS} days = weeks 40-78)")
        con = connect(path=paths.warehouse)
        try:
            summary = run_predict(
                con, night, overrides={"calibration_holdout_days": cdnow.HOLDOUT_DAYS}
            )
        finally:
            con.close()
        step(f"    {summary}")
        step("dbt build (predict marts)")
        dbt_build(paths, night, step)
        return paths.warehouse
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
