"""Registers the Lifecycle page (an Airflow UI plugin) with Airflow's plugin manager.

Airflow scans the .py files of plugins/ for AirflowPlugin classes; .airflowignore keeps
the scan out of the ``lifecycle`` package, so the plugin class is imported here. The
class lives in ``lifecycle/ui/plugin.py``; this import is light (no FastAPI or DuckDB).
"""

from lifecycle.ui.plugin import LifecyclePlugin

__all__ = ["LifecyclePlugin"]
