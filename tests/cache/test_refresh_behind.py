"""Refresh-behind: with a ``BackgroundRefresher`` a stale entry is served to every caller, the lease
winner included, and its recompute runs on a background thread under the same fill checks."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from cache.refresh import BackgroundRefresher
from cache.region import State

from .support import CountingCreator, failing, sample

SOFT = 300  # the product soft TTL in the default config


class Refusing:
    """A refresher whose queue is always full."""

    def submit(self, task) -> bool:
        return False


@pytest.fixture
def refresher():
    return BackgroundRefresher(threads=1, backlog=4)


@pytest.fixture
def behind(make_region, refresher):
    return make_region(refresher=refresher)


def stale(region, clock, product_id: int = 1):
    key = region.keys.product(product_id)
    region.get_or_create(key, CountingCreator(b"old"))
    clock.advance(SOFT + 1)
    return key


def test_the_lease_winner_is_served_stale_and_the_refresh_runs_behind(behind, refresher, clock, registry):
    key = stale(behind, clock)
    creator = CountingCreator(b"new")
    creator.gate = threading.Event()
    threads = []
    creator_call = creator.__call__
    creator_in_thread = lambda: threads.append(threading.current_thread().name) or creator_call()  # noqa: E731

    served = behind.get_or_create(key, creator_in_thread)
    assert (served.state, served.entry.body) == (State.STALE, b"old")
    assert creator.entered.wait(5)
    assert behind.get_or_create(key, CountingCreator(b"never")).entry.body == b"old"  # still refreshing
    creator.gate.set()
    refresher.join()

    assert threads == ["shelf-refresh-0"]
    assert (behind.get_or_create(key, CountingCreator(b"never")).state, creator.calls) == (State.HIT, 1)
    assert behind.get_or_create(key, CountingCreator(b"never")).entry.body == b"new"
    assert sample(registry, "refreshes", "product") == 1
    assert sample(registry, "misses", "product") == 1  # the first fill only: a refresh serves nobody


def test_an_invalidation_during_a_background_refresh_rejects_its_fill(behind, refresher, clock, registry):
    key = stale(behind, clock)
    creator = CountingCreator(b"before the write")
    creator.gate = threading.Event()
    behind.get_or_create(key, creator)
    assert creator.entered.wait(5)
    behind.invalidate([key])
    creator.gate.set()
    refresher.join()
    assert sample(registry, "fill_rejected", "product") == 1
    after = behind.get_or_create(key, CountingCreator(b"after the write"))
    assert (after.state, after.entry.body) == (State.MISS, b"after the write")


def test_a_full_refresher_falls_back_to_refreshing_in_the_request(make_region, clock):
    region = make_region(refresher=Refusing())
    key = stale(region, clock)
    result = region.get_or_create(key, CountingCreator(b"new"))
    assert (result.state, result.entry.body) == (State.MISS, b"new")


def test_a_failed_background_refresh_keeps_the_entry_and_frees_the_lease(
    behind, refresher, clock, redis_db, caplog
):
    key = stale(behind, clock)
    with caplog.at_level(logging.WARNING, logger="shelf.cache"):
        assert behind.get_or_create(key, failing(RuntimeError("db gone"))).entry.body == b"old"
        refresher.join()
    assert not redis_db.exists(key.lease)
    assert "background refresh" in caplog.text
    retried = behind.get_or_create(key, CountingCreator(b"new"))
    refresher.join()
    assert retried.state == State.STALE
    assert behind.get_or_create(key, CountingCreator(b"never")).entry.body == b"new"


def test_early_xfetch_refreshes_run_behind_too(make_region, refresher, clock):
    region = make_region(refresher=refresher, random=lambda: 1e-300)
    key = region.keys.product(2)
    region.get_or_create(key, CountingCreator(b"v1", delay=0.02))
    clock.advance(SOFT - 5)
    early = region.get_or_create(key, CountingCreator(b"v2"))
    refresher.join()
    assert (early.state, early.entry.body) == (State.HIT, b"v1")
    assert region.get_or_create(key, CountingCreator(b"never")).entry.body == b"v2"


def test_each_task_runs_in_the_context_given():
    entered = []

    class Context:
        def __enter__(self):
            entered.append("in")

        def __exit__(self, *exc):
            entered.append("out")

    refresher = BackgroundRefresher(threads=1, context=Context)
    assert refresher.submit(lambda: entered.append("task"))
    refresher.join()
    assert entered == ["in", "task", "out"]


def test_a_full_backlog_refuses_instead_of_growing():
    refresher, gate = BackgroundRefresher(threads=1, backlog=1), threading.Event()
    assert refresher.submit(lambda: gate.wait(5))  # taken by the thread at once, or queued
    accepted = [refresher.submit(lambda: None) for _ in range(3)]
    gate.set()
    refresher.join()
    assert accepted.count(False) >= 2


def test_a_forked_child_runs_its_refreshes_on_threads_of_its_own():
    refresher = BackgroundRefresher(threads=1)
    assert refresher.submit(lambda: None)
    refresher.join()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not survive the fork
        try:
            ok = refresher.submit(lambda: os.write(write, b"ran"))
            refresher.join()
        finally:
            os._exit(0 if ok else 1)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        assert (os.waitstatus_to_exitcode(status), pipe.read()) == (0, b"ran")
