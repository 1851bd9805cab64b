"""The Airflow plugin: a "Lifecycle" nav entry and the FastAPI app that serves its page.

Airflow imports plugins in every component (api-server, scheduler, dag-processor,
triggerer, task runners), so this module imports nothing beyond Airflow's plugin base
class: the FastAPI app, DuckDB and Airflow's auth dependencies are imported when the
api-server handles the first request to ``/lifecycle/``.

Discovery: ``plugins/.airflowignore`` keeps Airflow's plugin scan out of the
``lifecycle`` package (library code), so ``plugins/lifecycle_ui.py`` imports this class
into a file the scan does read.
"""

from __future__ import annotations

import importlib
import threading

from airflow.plugins_manager import AirflowPlugin

#: Where the app is mounted in the Airflow api-server (and the page's address).
URL_PREFIX = "/lifecycle"


class LazyApp:
    """An ASGI app that builds ``module:factory()`` on its first request.

    Keeps ``import lifecycle.ui.plugin`` as cheap as the plugin manager needs; only the
    api-server ever calls it.
    """

    def __init__(self, factory: str):
        self.factory = factory
        self._app = None
        self._lock = threading.Lock()

    def load(self):
        if self._app is None:
            with self._lock:
                if self._app is None:
                    module, name = self.factory.split(":")
                    self._app = getattr(importlib.import_module(module), name)()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.load()(scope, receive, send)


class LifecyclePlugin(AirflowPlugin):
    """The Lifecycle page: funnel, transitions, lead score, audiences, quality, freshness."""

    name = "lifecycle"
    fastapi_apps = [
        {
            "app": LazyApp("lifecycle.ui.app:create_app"),
            "url_prefix": URL_PREFIX,
            "name": "Lifecycle",
        }
    ]
    external_views = [
        {
            # shown in the nav; the UI opens href in a frame at /plugin/<url_route>
            "name": "Lifecycle",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "lifecycle",
            "icon": f"{URL_PREFIX}/static/icon.svg",
        }
    ]
