"""Mailchimp's campaigns are fetched in parallel and streamed page by page (bounded)."""

from __future__ import annotations

import threading
import time

import pytest

from lifecycle.sources.mailchimp import _parallel_pages


def test_every_page_of_every_key_arrives_once():
    def work(key):
        for i in range(7):
            yield (key, i)

    got = list(_parallel_pages(work, list(range(12)), workers=3))
    assert sorted(got) == [(k, i) for k in range(12) for i in range(7)]


def test_pages_wait_in_a_bounded_buffer_not_a_whole_key_at_once():
    produced = []
    lock = threading.Lock()

    def work(key):
        for i in range(50):
            with lock:
                produced.append((key, i))
            yield (key, i)

    workers = 2
    gen = _parallel_pages(work, [0, 1, 2], workers=workers)
    first = next(gen)
    time.sleep(0.5)  # let the workers run ahead as far as they can
    with lock:
        ahead = len(produced) - 1
    # each worker may hold one item it could not put; the buffer holds 2 * workers
    assert ahead <= 2 * workers + workers, ahead
    rest = list(gen)
    assert len(rest) + 1 == 150 and first in produced


def test_a_workers_error_reaches_the_consumer():
    def work(key):
        yield key
        if key == 3:
            raise RuntimeError("page 2 of campaign 3 failed")

    with pytest.raises(RuntimeError, match="campaign 3"):
        list(_parallel_pages(work, list(range(6)), workers=2))


def test_stopping_early_stops_the_workers():
    started = []

    def work(key):
        started.append(key)
        for i in range(10_000):
            yield (key, i)

    gen = _parallel_pages(work, list(range(100)), workers=2)
    assert next(gen)[1] == 0
    # close() waits for the workers (the with-block): they must notice and return, or
    # it would hang for good; a thread lets the test tell a hang from a return
    closer = threading.Thread(target=gen.close, daemon=True)
    closer.start()
    closer.join(timeout=120)
    assert not closer.is_alive(), "close() hangs: the workers never stopped"
    assert len(started) < 100  # the queued keys were cancelled, never run
