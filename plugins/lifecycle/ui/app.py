"""The Lifecycle page's FastAPI app, mounted by Airflow's api-server at ``/lifecycle``.

Every route, the page and its assets as well as the JSON, depends on Airflow's auth
manager: the caller must be an Airflow user allowed to read the runs of the nightly DAG.
The browser's Airflow session (the ``_token`` JWT cookie the UI already holds) lets the
page in; scripts send the same JWT as ``Authorization: Bearer`` (``POST /auth/token``).
Anonymous requests get 401, invalid tokens 403.

JSON endpoints (documented in the README): ``/lifecycle/api/status``, ``.../funnel``,
``.../transitions``, ``.../lead-score``, ``.../audiences``, ``.../quality``,
``.../freshness``; ``/lifecycle/api`` lists them and ``/lifecycle/api/openapi.json``
describes them. Each response carries ``night``: the night of the snapshot it was read
from (one connection per request, so one response never mixes two nights).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import duckdb
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from lifecycle.airflow_env import DAG_ID
from lifecycle.config import settings
from lifecycle.ui import runs, snapshot
from lifecycle.ui.plugin import URL_PREFIX

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript", "app.css": "text/css", "icon.svg": "image/svg+xml"}
ENDPOINTS = {
    "status": "which night the snapshot holds; the latest DAG run, its state and failed tasks",
    "funnel": "contacts per stage, reached per forward stage, conversion, median days in stage",
    "transitions": "the night's stage moves (from -> to) and moves per night for 30 nights",
    "lead-score": "lead-score histogram, contacts per grade, MQLs created per night",
    "audiences": "size per audience over 30 nights; last sync per audience x destination",
    "quality": "every quality-gate check of the snapshot's night, with a Data Docs link",
    "freshness": "each source's freshness at the night's cutoff",
}

#: Who may see the page: any Airflow user allowed to read the nightly DAG's runs.
require_access = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID)


def serving() -> Iterator[duckdb.DuckDBPyConnection | None]:
    con = snapshot.connect(settings().serving_path)
    try:
        yield con
    finally:
        if con is not None:
            con.close()


Snapshot = Annotated[duckdb.DuckDBPyConnection | None, Depends(serving)]


def _prefix(request: Request) -> str:
    """This app's mount path (``/lifecycle``, or under Airflow's base path)."""
    return request.scope.get("root_path", "").rstrip("/")


def _airflow_base(request: Request) -> str:
    return _prefix(request).removesuffix(URL_PREFIX)


def _docs_dir() -> Path:
    from lifecycle.quality.expectations import docs_index  # noqa: PLC0415 - pandas

    return docs_index(settings().data_dir).parent


def _empty(section: str) -> dict:
    return {"night": None, "snapshot": None, section: []}


def create_app() -> FastAPI:
    app = FastAPI(
        title="Lifecycle",
        description="The customer lifecycle at a glance, from the serving snapshot.",
        dependencies=[Depends(require_access)],
        # FastAPI's own docs routes would bypass the app's dependencies: served below
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def no_store(request: Request, call_next):
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"  # a new night must show at once
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text())

    @app.get("/static/{name}", include_in_schema=False)
    def asset(name: str) -> FileResponse:
        if name not in ASSETS:
            raise HTTPException(404, f"no asset {name!r}")
        return FileResponse(STATIC / name, media_type=ASSETS[name])

    @app.get("/data-docs/{path:path}", include_in_schema=False)
    def data_docs(path: str) -> FileResponse:
        """Great Expectations Data Docs (static HTML the quality gate writes)."""
        root = _docs_dir().resolve()
        target = (root / (path or "index.html")).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(404, f"no Data Docs page {path!r}")
        return FileResponse(target)

    @app.get("/api", summary="The JSON endpoints")
    def api_index(request: Request) -> dict:
        base = f"{_prefix(request)}/api"
        return {
            "endpoints": {
                name: {"url": f"{base}/{name}", "what": what} for name, what in ENDPOINTS.items()
            },
            "openapi": f"{base}/openapi.json",
        }

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi() -> dict:
        return app.openapi()

    @app.get("/api/status", summary=ENDPOINTS["status"])
    def status(request: Request, con: Snapshot, session: SessionDep) -> dict:
        snap = snapshot.info(con)
        base = _airflow_base(request)
        recent = runs.recent_runs(session, DAG_ID, base)
        syncs = snapshot.last_syncs(con) if snap else []
        verdict = runs.night_status(snap, recent, syncs)
        latest = verdict["latest_run"]
        failed = (
            runs.failed_tasks(session, DAG_ID, latest["run_id"], base)
            if latest and latest["state"] == "failed"
            else []
        )
        return {
            "night": snap["night"] if snap else None,
            "dag_id": DAG_ID,
            "snapshot": snap,
            **verdict,
            "failed_tasks": failed,
            "recent_runs": recent,
            "airflow_base": base,
        }

    @app.get("/api/funnel", summary=ENDPOINTS["funnel"])
    def funnel(con: Snapshot) -> dict:
        snap = snapshot.info(con)
        if not snap:
            return _empty("stages")
        order = snapshot.stages(settings().dbt_project_dir)
        return {
            "night": snap["night"],
            "snapshot": snap,
            **snapshot.funnel(con, order, snap["night"]),
        }

    @app.get("/api/transitions", summary=ENDPOINTS["transitions"])
    def transitions(con: Snapshot) -> dict:
        snap = snapshot.info(con)
        if not snap:
            return {**_empty("trend"), "last_night": None}
        return {
            "night": snap["night"],
            "snapshot": snap,
            **snapshot.transitions(con, snap["night"]),
        }

    @app.get("/api/lead-score", summary=ENDPOINTS["lead-score"])
    def lead_score(con: Snapshot) -> dict:
        snap = snapshot.info(con)
        if not snap:
            return {**_empty("distribution"), "grades": [], "mqls_per_night": []}
        return {"night": snap["night"], "snapshot": snap, **snapshot.lead_score(con, snap["night"])}

    @app.get("/api/audiences", summary=ENDPOINTS["audiences"])
    def audiences(request: Request, con: Snapshot, session: SessionDep) -> dict:
        snap = snapshot.info(con)
        if not snap:
            return {**_empty("audiences"), "syncs": []}
        syncs = runs.link_syncs(session, DAG_ID, _airflow_base(request), snapshot.last_syncs(con))
        return {
            "night": snap["night"],
            "snapshot": snap,
            "audiences": snapshot.audience_sizes(con, snap["night"]),
            "syncs": syncs,
        }

    @app.get("/api/quality", summary=ENDPOINTS["quality"])
    def quality(request: Request, con: Snapshot) -> dict:
        snap = snapshot.info(con)
        docs = _docs_dir() / "index.html"
        docs_url = f"{_prefix(request)}/data-docs/index.html" if docs.is_file() else None
        if not snap:
            return {**_empty("checks"), "counts": {}, "data_docs_url": docs_url}
        return {
            "night": snap["night"],
            "snapshot": snap,
            **snapshot.quality(con, snap),
            "data_docs_url": docs_url,
        }

    @app.get("/api/freshness", summary=ENDPOINTS["freshness"])
    def freshness(con: Snapshot) -> dict:
        snap = snapshot.info(con)
        if not snap:
            return _empty("sources")
        return {
            "night": snap["night"],
            "snapshot": snap,
            "published_at": snap["published_at"],
            "sources": snapshot.freshness(con, snap),
        }

    return app
