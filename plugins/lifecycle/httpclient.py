"""One HTTP client for every vendor: retries, backoff with jitter, rate limits, clear errors.

Sources and destinations call vendors through :class:`ApiClient`, so retry and
rate-limit behaviour is written (and tested) once:

- 429 and 5xx, connection errors, timeouts and truncated JSON bodies are retried with
  exponential backoff and full jitter, up to ``max_retries``;
- ``Retry-After`` (seconds) is honoured, and HubSpot's ``X-HubSpot-RateLimit-Remaining``
  of 0 waits out ``X-HubSpot-RateLimit-Interval-Milliseconds`` before the next call;
- 401/403 raise :class:`AuthError` naming the connection to fix, never the secret;
- other 4xx raise :class:`ApiError` with the vendor's message. Both are ``permanent``:
  the Airflow task fails on its first try (``lifecycle.failures``), while a call that
  exhausted its retries on 429/5xx/timeouts raises :class:`RetriesExhausted` and the
  task is retried.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import threading
import time
from collections.abc import Callable

import requests

log = logging.getLogger(__name__)

#: Statuses retried with backoff: throttling, timeouts at a proxy, server errors.
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


class ApiError(RuntimeError):
    """A vendor answered with an error that retrying will not fix."""

    def __init__(self, vendor: str, method: str, url: str, status: int, body: str):
        self.status = status
        self.body = body
        super().__init__(f"{vendor} {method} {url} failed with HTTP {status}: {body[:500]}")

    @property
    def permanent(self) -> bool:
        """A contract or auth error (400, 401, 403, 404, ...): the same request fails the
        same way later, so the task that made it should fail at once, not retry."""
        return 400 <= self.status < 500 and self.status not in RETRY_STATUSES


class AuthError(ApiError):
    """The vendor refused the credentials."""

    def __init__(
        self, vendor: str, method: str, url: str, status: int, body: str, conn_id: str | None
    ):
        super().__init__(vendor, method, url, status, body)
        self.args = (
            f"{vendor} refused the credentials (HTTP {status}) for {method} {url}. "
            f"Check the password/token of Airflow connection '{conn_id}'.",
        )


class RetriesExhausted(RuntimeError):
    """A call kept failing with retryable errors."""


#: Connection ``extra`` keys that tune the client (e.g. a short timeout in tests).
CLIENT_OPTIONS = {
    "timeout_s": float,
    "max_retries": int,
    "backoff_s": float,
    "max_backoff_s": float,
}


def client_options(extra: dict | None) -> dict:
    """ApiClient keyword arguments found in a connection's ``extra``."""
    extra = extra or {}
    return {k: cast(extra[k]) for k, cast in CLIENT_OPTIONS.items() if k in extra}


#: When each endpoint's calls came back, shared by every client of it in this process
#: (one HubSpot resource's client must count the calls the others made in the window:
#: they spend one budget). Keyed by vendor, base URL and clock (tests inject clocks).
_PACING: dict[tuple, collections.deque] = {}
_PACING_LOCK = threading.Lock()


def _pacing_record(vendor: str, base_url: str, clock) -> collections.deque:
    with _PACING_LOCK:
        return _PACING.setdefault((vendor, base_url, clock), collections.deque(maxlen=1000))


#: The connections in flight to each endpoint, shared the same way: a vendor that limits
#: simultaneous connections per key (Mailchimp: 10) counts every client's. Keyed by
#: vendor, base URL and the budget the clients declare.
_SLOTS: dict[tuple, threading.BoundedSemaphore] = {}


def _connection_slots(vendor: str, base_url: str, limit: int) -> threading.BoundedSemaphore:
    with _PACING_LOCK:
        return _SLOTS.setdefault((vendor, base_url, limit), threading.BoundedSemaphore(limit))


class ApiClient:
    """A requests session bound to one vendor endpoint."""

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        headers: dict | None = None,
        auth: tuple[str, str] | None = None,
        conn_id: str | None = None,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 30.0,
        max_concurrency: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.conn_id = conn_id
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        if auth:
            self.session.auth = auth
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._clock = clock
        #: when this endpoint's recent successful calls came back (rate-limit pacing),
        #: this client's and every other client's of the same endpoint in this process
        self._sent = _pacing_record(vendor, self.base_url, clock)
        #: at most ``max_concurrency`` calls in flight to this endpoint from this process,
        #: counting every client of it that declares the same budget
        self._slots = (
            _connection_slots(vendor, self.base_url, max_concurrency) if max_concurrency else None
        )
        self.stats = {"requests": 0, "retries": 0, "throttled": 0}
        self._stats_lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self.stats[key] += 1

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("Retry-After")
            if retry_after:
                try:
                    return min(float(retry_after), self.max_backoff_s * 4)
                except ValueError:
                    pass
            interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
            if response.status_code == 429 and interval:
                return float(interval) / 1000.0
        cap = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not crypto

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send one request with retries; return the successful response."""
        url = path if path.startswith("http") else f"{self.base_url}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self.timeout_s)
        last_error = ""
        for attempt in range(self.max_retries + 1):
            response = None
            try:
                if self._slots:
                    with self._slots:
                        response = self.session.request(method, url, **kwargs)
                else:
                    response = self.session.request(method, url, **kwargs)
                self._count("requests")
            except (requests.ConnectionError, requests.Timeout) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status in (401, 403) and not (
                    status == 403 and "connection" in response.text.lower()
                ):
                    raise AuthError(self.vendor, method, url, status, response.text, self.conn_id)
                if status in RETRY_STATUSES or (
                    status == 403 and "connection" in response.text.lower()
                ):
                    last_error = f"HTTP {status}: {response.text[:200]}"
                    if status == 429:
                        self._count("throttled")
                elif status >= 400:
                    raise ApiError(self.vendor, method, url, status, response.text)
                else:
                    self._respect_remaining(response)
                    return response
            if attempt == self.max_retries:
                break
            delay = self._delay(attempt, response)
            self._count("retries")
            log.warning(
                "%s %s %s: %s; retry %d/%d in %.1fs",
                self.vendor,
                method,
                url,
                last_error,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
        raise RetriesExhausted(
            f"{self.vendor} {method} {url} still failing after {self.max_retries} retries: "
            f"{last_error}"
        )

    def _respect_remaining(self, response: requests.Response) -> None:
        """The window is rolling ("API usage guidelines and limits": Max calls per
        Interval): when it is used up, wait until the oldest call in it has left it, not
        a whole interval. The calls on record are this process's to the endpoint (every
        client's); with fewer than ``Max`` of them in the window another process spends
        the budget too, and the client waits the whole interval."""
        now = self._clock()
        with _PACING_LOCK:
            self._sent.append(now)
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if remaining == "0" and interval:
            self._count("throttled")
            window = float(interval) / 1000.0
            wait = window
            try:
                limit = int(response.headers.get("X-HubSpot-RateLimit-Max", ""))
            except ValueError:
                limit = 0
            with _PACING_LOCK:
                recent = [t for t in self._sent if now - t <= window]
            if 0 < limit <= len(recent):
                wait = min(window, max(0.0, recent[-limit] + window - now))
            self._sleep(wait)

    def json(self, method: str, path: str, **kwargs) -> dict:
        """Like :meth:`request` but parse JSON; a truncated body is retried like a 5xx."""
        for attempt in range(self.max_retries + 1):
            response = self.request(method, path, **kwargs)
            try:
                return response.json()
            except (json.JSONDecodeError, requests.JSONDecodeError) as exc:
                if attempt == self.max_retries:
                    raise ApiError(
                        self.vendor,
                        method,
                        response.url,
                        response.status_code,
                        f"malformed JSON body: {exc}",
                    ) from exc
                self._count("retries")
                log.warning(
                    "%s %s: malformed JSON body (%s); retrying", self.vendor, response.url, exc
                )
                self._sleep(self._delay(attempt, None))
        raise AssertionError("unreachable")
