"""The shared HTTP client: what it retries, how long it waits, what it never does."""

from __future__ import annotations

import collections
import threading
import time

import pytest
import requests

from lifecycle.httpclient import ApiClient, ApiError, AuthError, RetriesExhausted, client_options


def _response(status: int, body: str = "{}", headers: dict | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = body.encode()
    r.headers.update(headers or {})
    r.url = "http://vendor.test/x"
    return r


class Script:
    """Plays back responses (or exceptions) in order and records what was sent."""

    def __init__(self, *items):
        self.items = list(items)
        self.calls = 0

    def __call__(self, method, url, **kwargs):
        self.calls += 1
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def _client(script: Script, **kw) -> tuple[ApiClient, list[float]]:
    waits: list[float] = []
    api = ApiClient(
        "Vendor", "http://vendor.test", sleep=waits.append, conn_id="vendor_default", **kw
    )
    api.session.request = script
    return api, waits


def test_retry_after_is_honoured_then_the_call_succeeds():
    script = Script(_response(429, headers={"Retry-After": "7"}), _response(200, '{"ok": 1}'))
    api, waits = _client(script)
    assert api.json("GET", "x") == {"ok": 1}
    assert waits == [7.0]
    assert api.stats["throttled"] == 1 and api.stats["retries"] == 1


def test_5xx_and_timeouts_back_off_exponentially_with_jitter():
    script = Script(
        _response(500),
        requests.Timeout("read timed out"),
        _response(503),
        requests.ConnectionError("reset"),
        _response(200),
    )
    api, waits = _client(script, backoff_s=1.0, max_backoff_s=100)
    api.request("GET", "x")
    assert len(waits) == 4
    for attempt, w in enumerate(waits):
        cap = 2**attempt
        assert cap / 2 <= w <= cap  # full jitter in the upper half of the cap


def test_rate_limit_headers_pause_before_the_next_call():
    headers = {
        "X-HubSpot-RateLimit-Remaining": "0",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "1000",
    }
    api, waits = _client(Script(_response(200, headers=headers)))
    api.request("GET", "x")
    assert waits == [1.0]


def _paced(remaining: list[str], step: float = 0.5):
    """A client on a fake clock: each call takes ``step`` seconds, sleeping moves it."""
    clock = [0.0]
    waits: list[float] = []

    def call(method, url, **kwargs):
        clock[0] += step
        return _response(
            200,
            headers={
                "X-HubSpot-RateLimit-Max": "4",
                "X-HubSpot-RateLimit-Remaining": remaining.pop(0),
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
        )

    def sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    api = ApiClient("HubSpot", "http://vendor.test", sleep=sleep, clock=lambda: clock[0])
    api.session.request = call
    return api, waits, clock


def test_a_used_up_window_waits_until_the_clients_oldest_call_leaves_it():
    # 4 calls per rolling 10 s; they came back at 0.5, 1.0, 1.5 and 2.0 s: the window
    # has room again when the first leaves it, at 10.5 s, not 10 s after the last
    api, waits, clock = _paced(["3", "2", "1", "0", "0"])
    for _ in range(4):
        api.request("GET", "x")
    assert waits == [8.5] and clock[0] == 10.5
    # the next call comes back at 11.0 s, when the second oldest (1.0 s) leaves: no wait
    api.request("GET", "x")
    assert waits == [8.5, 0.0] and clock[0] == 11.0


def test_a_used_up_window_without_its_calls_on_record_waits_the_whole_interval():
    # the first call already finds the window used up (another client spent it)
    api, waits, _ = _paced(["0"])
    api.request("GET", "x")
    assert waits == [10.0]


def test_persistent_failure_raises_a_clear_error_after_max_retries():
    script = Script(*[_response(502, "bad gateway")] * 4)
    api, _ = _client(script, max_retries=3)
    with pytest.raises(
        RetriesExhausted, match=r"Vendor GET http://vendor.test/x .* 3 retries.*502"
    ):
        api.request("GET", "x")
    assert script.calls == 4


def test_auth_and_client_errors_are_not_retried_and_name_the_connection():
    api, _ = _client(
        Script(_response(401, '{"message": "bad token"}')),
        headers={"Authorization": "Bearer s3cret"},
    )
    with pytest.raises(AuthError) as info:
        api.request("GET", "x")
    assert "vendor_default" in str(info.value) and "s3cret" not in str(info.value)
    api, _ = _client(Script(_response(400, '{"message": "limit must be <= 100"}')))
    with pytest.raises(ApiError, match="limit must be <= 100"):
        api.request("GET", "x")


def test_a_truncated_json_body_is_retried():
    script = Script(_response(200, '{"results": [ {"id'), _response(200, '{"results": []}'))
    api, waits = _client(script)
    assert api.json("GET", "x") == {"results": []}
    assert len(waits) == 1


def _counted_calls():
    """A vendor call that takes 20 ms, and the peak of calls in flight per host."""
    inflight: dict[str, int] = collections.Counter()
    peak: dict[str, int] = collections.Counter()
    lock = threading.Lock()

    def slow(method, url, **kwargs):
        host = url.split("/")[2].split(".")[0]
        with lock:
            inflight[host] += 1
            peak[host] = max(peak[host], inflight[host])
        time.sleep(0.02)
        with lock:
            inflight[host] -= 1
        return _response(200)

    return slow, peak


def _in_parallel(clients: list[ApiClient], each: int) -> None:
    threads = [
        threading.Thread(target=api.request, args=("GET", "x"))
        for api in clients
        for _ in range(each)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_concurrency_never_exceeds_the_limit():
    slow, peak = _counted_calls()
    api = ApiClient("Vendor", "http://vendor.test", max_concurrency=3)
    api.session.request = slow
    _in_parallel([api], 12)
    assert peak["vendor"] == 3


def test_clients_of_one_endpoint_share_its_connection_budget():
    # Mailchimp's members, campaigns and activity resources each have a client; the key
    # allows so many simultaneous connections in all, not per client
    slow, peak = _counted_calls()
    clients = [ApiClient("Vendor", "http://shared.test", max_concurrency=2) for _ in range(3)]
    other = ApiClient("Vendor", "http://other.test", max_concurrency=2)
    for api in [*clients, other]:
        api.session.request = slow
    _in_parallel([*clients, other], 6)
    # three clients, one budget of 2; another endpoint has its own
    assert dict(peak) == {"shared": 2, "other": 2}


def test_client_options_come_from_the_connection_extra():
    assert client_options({"timeout_s": "2", "max_retries": "1", "base_url": "x"}) == {
        "timeout_s": 2.0,
        "max_retries": 1,
    }


def _shared_clock(remaining: list[str]):
    """A vendor call, a sleep and a clock on one fake timeline, for several clients."""
    clock = [0.0]
    waits: list[float] = []

    def call(method, url, **kwargs):
        clock[0] += 0.5
        return _response(
            200,
            headers={
                "X-HubSpot-RateLimit-Remaining": remaining.pop(0),
                "X-HubSpot-RateLimit-Max": "4",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
        )

    def sleep(s: float) -> None:
        waits.append(s)
        clock[0] += s

    def now() -> float:
        return clock[0]

    def client() -> ApiClient:
        api = ApiClient("HubSpot", "http://vendor.test", sleep=sleep, clock=now)
        api.session.request = call
        return api

    return client, waits, clock


def test_clients_of_one_endpoint_pace_on_the_calls_they_made_together():
    # two clients (HubSpot's contacts and deals resources) share a budget of 4 per 10 s;
    # each made 2 of the 4 calls in the window: the window is used up at the 4th, and the
    # wait runs until the oldest call of either leaves it
    client, waits, clock = _shared_clock(["3", "2", "1", "0"])
    a, b = client(), client()
    for api in (a, b, a, b):
        api.request("GET", "x")
    # calls came back at 0.5, 1.0, 1.5, 2.0: room again at 10.5 s
    assert waits == [8.5] and clock[0] == 10.5


def test_calls_that_left_the_window_do_not_count_for_pacing():
    # 4 per 10 s; 4 calls long ago and one now that finds the window used up: the
    # client's old calls are not in the window, so someone else spent it: wait it out
    client, waits, clock = _shared_clock(["3", "2", "1", "3", "0"])
    api = client()
    for _ in range(4):
        api.request("GET", "x")
    clock[0] = 60.0
    api.request("GET", "x")
    assert waits == [10.0]
