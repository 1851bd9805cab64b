"""Run the sandbox: simulate a world, land its web files, serve its vendor APIs.

Used three ways: ``lifecycle sandbox serve`` (foreground, for ``make airflow``),
``lifecycle sandbox start/stop`` (background process with a pid file, for ``make demo``)
and :class:`SandboxServer` (a thread inside pytest).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import uvicorn

from lifecycle.sandbox.app import create_app
from lifecycle.sandbox.google_ads.api import (
    GOOGLE_ADS_CLIENT_ID,
    GOOGLE_ADS_CLIENT_SECRET,
    GOOGLE_ADS_DEVELOPER_TOKEN,
    GOOGLE_ADS_REFRESH_TOKEN,
)
from lifecycle.sandbox.segment.landing import write_segment_files
from lifecycle.sandbox.state import HUBSPOT_TOKEN, MAILCHIMP_KEY, META_TOKEN
from lifecycle.sandbox.world import World, WorldConfig, simulate

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765


def connection_env(base_url: str, landing_dir: Path) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables that point the connectors at a sandbox."""

    def conn(path: str, **kw) -> str:
        return json.dumps({"conn_type": "http", "extra": {"base_url": f"{base_url}/{path}"}, **kw})

    return {
        "AIRFLOW_CONN_HUBSPOT_DEFAULT": conn("hubspot", password=HUBSPOT_TOKEN),
        "AIRFLOW_CONN_MAILCHIMP_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "login": "anystring",
                "password": MAILCHIMP_KEY,
                "extra": {"base_url": f"{base_url}/mailchimp/3.0", "list_id": "lst0001"},
            }
        ),
        # API versions: the destinations' defaults (extra.api_version overrides them).
        "AIRFLOW_CONN_META_DEFAULT": conn("meta", password=META_TOKEN),
        # Mailchimp and HubSpot destinations reuse mailchimp_default / hubspot_default.
        "AIRFLOW_CONN_GOOGLE_ADS_DEFAULT": json.dumps(
            {
                "conn_type": "http",
                "login": GOOGLE_ADS_CLIENT_ID,
                "password": GOOGLE_ADS_CLIENT_SECRET,
                "extra": {
                    "base_url": f"{base_url}/google_ads",
                    "token_url": f"{base_url}/google_ads/token",
                    "refresh_token": GOOGLE_ADS_REFRESH_TOKEN,
                    "developer_token": GOOGLE_ADS_DEVELOPER_TOKEN,
                },
            }
        ),
        "AIRFLOW_CONN_SEGMENT_DEFAULT": json.dumps(
            {"conn_type": "fs", "extra": {"path": str(landing_dir), "source_id": "web"}}
        ),
    }


def prepare(
    config: WorldConfig,
    landing_dir: Path,
    segment_anomalies: bool = False,
    world: str = "simulated",
) -> World:
    """Simulate the world and land its Segment files (what exists before any API call).

    ``segment_anomalies`` adds late files, events appended to past days and a duplicated
    file to the landing folder, as real object-storage deliveries have. ``world="cdnow"``
    replays CDNOW's real purchases instead of simulating (``sandbox/cdnow.py``).
    """
    t0 = time.monotonic()
    if world == "cdnow":
        from lifecycle.sandbox import cdnow  # noqa: PLC0415 - reads the lifetimes wheel

        world = cdnow.build(config.seed, config.now, customers=config.contacts)
    else:
        world = simulate(
            config,
            progress=lambda done, total: log.info(
                "simulating: %d / %d people (%.0fs)", done, total, time.monotonic() - t0
            ),
        )
    log.info("simulated %d contacts in %.1fs", config.contacts, time.monotonic() - t0)
    days = write_segment_files(world, landing_dir, world.now_ts, anomalies=segment_anomalies)
    log.info("landed %d days of web events under %s", len(days), landing_dir)
    return world


class SandboxServer:
    """The sandbox on a free loopback port in a background thread (for tests)."""

    def __init__(self, world: World, port: int = 0):
        self.world = world
        self.port = port or _free_port()
        self.app = create_app(world)
        cfg = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SandboxServer:
        self.thread.start()
        wait_healthy(self.base_url)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base_url: str, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"{base_url}/_sandbox/health", timeout=2)
            if r.ok:
                return r.json()
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"sandbox at {base_url} not healthy after {timeout_s}s: {last}")


def serve(
    config: WorldConfig,
    landing_dir: Path,
    port: int = DEFAULT_PORT,
    segment_anomalies: bool = False,
    world_kind: str = "simulated",
) -> None:
    """Serve in the foreground until interrupted."""
    world = prepare(config, landing_dir, segment_anomalies=segment_anomalies, world=world_kind)
    log.info("serving the vendor APIs on http://127.0.0.1:%d (Ctrl-C stops)", port)
    uvicorn.run(create_app(world), host="127.0.0.1", port=port, log_level="warning")


def start_background(
    config: WorldConfig,
    landing_dir: Path,
    pid_file: Path,
    port: int = DEFAULT_PORT,
    log_file: Path | None = None,
    world: str = "simulated",
) -> int:
    """Start ``lifecycle sandbox serve`` as a child process; return its pid once healthy."""
    stop_background(pid_file)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_file or pid_file.with_suffix(".log"), "w")  # noqa: SIM115 - child keeps it
    cmd = [
        sys.executable,
        "-m",
        "lifecycle.cli",
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--contacts",
        str(config.contacts),
        "--seed",
        str(config.seed),
        "--now",
        config.now.isoformat(),
        "--landing",
        str(landing_dir),
        "--world",
        world,
        "--profile",
        config.profile,
    ]
    proc = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy()
    )
    pid_file.write_text(str(proc.pid))
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout_s=300)
    except TimeoutError:
        stop_background(pid_file)
        raise
    return proc.pid


def stop_background(pid_file: Path) -> bool:
    if not pid_file.exists():
        return False
    try:
        pid = int(pid_file.read_text())
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (ProcessLookupError, ValueError, PermissionError):
        pass
    pid_file.unlink(missing_ok=True)
    return True
