"""Credentials and endpoints of the outside world, from Airflow Connections.

A connection is looked up as Airflow does (``AIRFLOW_CONN_<ID>`` in the environment,
JSON form, first; then the Airflow metadata database or secrets backend when running
inside Airflow). Connection passwords are never logged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field


class ConnectionNotFound(LookupError):
    """No Airflow connection with this id is configured."""


@dataclass(frozen=True)
class Endpoint:
    """A vendor endpoint: base URL plus credentials (``repr`` hides secrets)."""

    conn_id: str
    base_url: str
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)


def _from_json(conn_id: str, raw: str) -> Endpoint:
    data = json.loads(raw)
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    base = extra.get("base_url")
    if not base:
        scheme = data.get("schema") or "https"
        port = f":{data['port']}" if data.get("port") else ""
        base = f"{scheme}://{data.get('host')}{port}"
    return Endpoint(conn_id, base.rstrip("/"), data.get("login"), data.get("password"), extra)


def get_endpoint(conn_id: str) -> Endpoint:
    """Resolve an Airflow connection id to an :class:`Endpoint`."""
    raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    if raw and raw.lstrip().startswith("{"):
        return _from_json(conn_id, raw)
    try:
        from airflow.sdk import BaseHook  # noqa: PLC0415 - only inside Airflow

        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:  # Airflow missing or connection undefined
        raise ConnectionNotFound(
            f"Airflow connection '{conn_id}' is not configured: set AIRFLOW_CONN_"
            f"{conn_id.upper()} (JSON with extra.base_url and password) or add it in the "
            f"Airflow UI (Admin > Connections). See .env.example."
        ) from exc
    extra = conn.extra_dejson or {}
    base = extra.get("base_url") or f"{conn.schema or 'https'}://{conn.host}" + (
        f":{conn.port}" if conn.port else ""
    )
    return Endpoint(conn_id, base.rstrip("/"), conn.login, conn.password, extra)
