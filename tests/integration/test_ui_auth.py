"""The Lifecycle page's app inside Airflow's own api-server app: discovered from plugins/,
mounted at /lifecycle, and every route behind Airflow's auth manager.

The app under test is Airflow's ``create_app()`` (plugins loaded from the project's
plugins folder, as the api-server does), driven with FastAPI's TestClient. Tokens come
from Airflow's own login endpoint with the generated admin password.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
#: Every JSON endpoint the README documents.
API = ["status", "funnel", "transitions", "lead-score", "audiences", "quality", "freshness"]
#: A concrete request per route parameter.
PARAMS = {"{name}": "app.js", "{path:path}": "index.html"}


@pytest.fixture(scope="module")
def airflow_app(airflow_db, tmp_path_factory):
    """Airflow's api-server app, with the serving snapshot pointed at an empty folder."""
    empty = tmp_path_factory.mktemp("no_snapshot")
    saved = {k: os.environ.get(k) for k in ("LIFECYCLE_SERVING_PATH", "LIFECYCLE_DATA_DIR")}
    os.environ["LIFECYCLE_SERVING_PATH"] = str(empty / "serving.duckdb")
    os.environ["LIFECYCLE_DATA_DIR"] = str(empty)
    from airflow.api_fastapi.app import create_app

    app = create_app()
    yield app
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def client(airflow_app):
    return TestClient(airflow_app)


@pytest.fixture(scope="module")
def token(client, airflow_db) -> str:
    passwords = Path(airflow_db["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(passwords.read_text())["admin"]
    r = client.post("/auth/token", json={"username": "admin", "password": password})
    assert r.status_code == 201, r.text
    return r.json()["access_token"]


def plugin_app():
    from lifecycle.ui.plugin import LifecyclePlugin

    return LifecyclePlugin.fastapi_apps[0]["app"].load()


def routes() -> list[str]:
    """Every route of the plugin's app, as a concrete /lifecycle/... path."""
    out = []
    for route in plugin_app().routes:
        path = route.path
        for param, value in PARAMS.items():
            path = path.replace(param, value)
        assert "{" not in path, f"no concrete value for a parameter of {route.path}"
        out.append("/lifecycle" + path)
    return sorted(out)


ROUTES = routes()


def test_every_route_of_the_app_is_an_api_route_behind_the_auth_dependency():
    app = plugin_app()
    # FastAPI's own /docs, /redoc and /openapi.json would not carry the app's dependencies
    assert all(isinstance(r, APIRoute) for r in app.routes), [r.path for r in app.routes]
    for r in app.routes:
        names = {d.call.__qualname__ for d in r.dependant.dependencies}
        assert any("requires_access_dag" in n for n in names), (r.path, names)
    assert {f"/lifecycle/api/{e}" for e in API} <= set(ROUTES)
    assert {"/lifecycle/", "/lifecycle/api", "/lifecycle/api/openapi.json"} <= set(ROUTES)


def test_plugin_is_registered_with_a_nav_entry_and_the_app_mounted(client, token):
    r = client.get("/api/v2/plugins", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    plugin = next(p for p in r.json()["plugins"] if p["name"] == "lifecycle")
    assert plugin["fastapi_apps"] == [
        {"app": "lifecycle.ui.plugin.LazyApp", "url_prefix": "/lifecycle", "name": "Lifecycle"}
    ]
    (view,) = plugin["external_views"]
    assert (view["name"], view["href"], view["destination"], view["url_route"]) == (
        "Lifecycle",
        "/lifecycle/",
        "nav",
        "lifecycle",
    )
    assert not [e for e in r.json().get("import_errors", []) if "lifecycle" in str(e)]


@pytest.mark.parametrize("path", ROUTES)
def test_anonymous_gets_401(client, path):
    r = client.get(path)
    assert r.status_code == 401, (path, r.status_code, r.text[:200])
    assert "Lifecycle" not in r.text and "funnel" not in r.text


@pytest.mark.parametrize("path", ROUTES)
def test_a_forged_token_gets_403(client, path):
    forged = "eyJhbGciOiJIUzUxMiJ9.eyJzdWIiOiJhZG1pbiJ9.bm90LXNpZ25lZA"
    r = client.get(path, headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 403, (path, r.status_code)
    r = client.get(path, cookies={"_token": forged})
    assert r.status_code in (401, 403), (path, r.status_code)


def _jwt(role: str | None, seconds: int) -> str:
    """A token signed by the app's own auth manager (as its login would issue)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username="admin", role=role)
    return get_auth_manager().generate_jwt(user, expiration_time_in_seconds=seconds)


@pytest.mark.parametrize("path", ROUTES)
def test_an_expired_token_gets_401(client, token, path):
    r = client.get(path, headers={"Authorization": f"Bearer {_jwt('ADMIN', -60)}"})
    assert r.status_code == 401, (path, r.status_code)


@pytest.mark.parametrize("path", ROUTES)
def test_a_user_without_a_role_gets_403(client, token, path):
    """Signed in, but not allowed to read the nightly DAG's runs."""
    r = client.get(path, headers={"Authorization": f"Bearer {_jwt(None, 600)}"})
    assert r.status_code == 403, (path, r.status_code)


@pytest.mark.parametrize("path", ROUTES)
def test_the_airflow_jwt_lets_every_route_in(client, token, path):
    """As a script sends it (Bearer) and as the UI's browser session holds it (cookie)."""
    want = 404 if "/data-docs/" in path else 200  # no Data Docs in an empty data folder
    r = client.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == want, (path, r.status_code, r.text[:300])
    cookie_client = TestClient(client.app)
    cookie_client.cookies.set("_token", token)
    assert cookie_client.get(path).status_code == want, path


def test_without_a_snapshot_every_endpoint_answers_with_empty_sections(client, token):
    h = {"Authorization": f"Bearer {token}"}
    got = {e: client.get(f"/lifecycle/api/{e}", headers=h).json() for e in API}
    assert {e: body["night"] for e, body in got.items()} == dict.fromkeys(API)
    assert got["funnel"]["stages"] == []
    assert got["audiences"]["syncs"] == [] and got["audiences"]["audiences"] == []
    assert got["quality"]["checks"] == [] and got["freshness"]["sources"] == []
    assert got["status"]["snapshot"] is None
    page = client.get("/lifecycle/", headers=h).text
    assert 'id="funnel-chart-box"' in page and 'id="sync-table"' in page
    assert re.search(r'<script src="static/app.js">', page)


def test_data_docs_are_served_and_never_a_file_outside_their_folder(client, token):
    import shutil

    data = Path(os.environ["LIFECYCLE_DATA_DIR"])
    docs = data / "quality" / "gx" / "uncommitted" / "data_docs" / "local_site"
    docs.mkdir(parents=True)
    (docs / "index.html").write_text("<html>suite marts.dim_contacts</html>")
    (data / "secret.txt").write_text("not for the browser")
    h = {"Authorization": f"Bearer {token}"}
    try:
        r = client.get("/lifecycle/data-docs/index.html", headers=h)
        assert (r.status_code, r.text) == (200, "<html>suite marts.dim_contacts</html>")
        quality = client.get("/lifecycle/api/quality", headers=h).json()
        assert quality["data_docs_url"] == "/lifecycle/data-docs/index.html"
        assert client.get("/lifecycle/data-docs/index.html").status_code == 401
        # %2F keeps the client from normalising the dots away: the route gets them
        # five levels up from local_site/ is the data folder, where secret.txt is
        for path in ("..%2F" * 5 + "secret.txt", "%2E%2E%2F" * 5 + "secret.txt"):
            r = client.get(f"/lifecycle/data-docs/{path}", headers=h)
            assert r.status_code == 404, (path, r.status_code)
            assert "no Data Docs page" in r.json()["detail"]
    finally:
        shutil.rmtree(data / "quality")
        (data / "secret.txt").unlink()


def test_loading_the_plugin_imports_nothing_heavy():
    """Every Airflow component loads plugins: the plugin module stays light."""
    probe = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import lifecycle_ui; "
        "print(json.dumps([m for m in ('fastapi', 'duckdb', 'pandas', 'lifecycle.ui.app',"
        " 'airflow.api_fastapi.core_api.security') if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(ROOT / "plugins")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
