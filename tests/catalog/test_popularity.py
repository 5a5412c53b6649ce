import threading

from catalog.popularity import POPULARITY_KEY, ViewTracker


def test_close_waits_for_a_flush_in_flight_and_stops_the_flusher(redis_client, monkeypatch):
    """A flush that has taken the counts but not yet sent them must land before close returns;
    otherwise the counts arrive in Redis after whoever closed the tracker has moved on."""
    tracker = ViewTracker(redis_client, flush_seconds=0.01)
    sending, release = threading.Event(), threading.Event()
    real_pipeline = redis_client.pipeline

    def slow_pipeline(*args, **kwargs):
        sending.set()
        release.wait(5)
        return real_pipeline(*args, **kwargs)

    monkeypatch.setattr(redis_client, "pipeline", slow_pipeline)
    tracker.record(7)
    assert sending.wait(5)  # the flusher holds the count, on its way to Redis
    closed = threading.Thread(target=tracker.close)
    closed.start()
    closed.join(0.2)
    assert closed.is_alive()
    release.set()
    closed.join(5)
    assert not closed.is_alive()
    assert redis_client.zscore(POPULARITY_KEY, 7) == 1
    assert not tracker._flusher.is_alive()


def test_a_closed_tracker_keeps_later_counts_for_an_explicit_flush(redis_client):
    tracker = ViewTracker(redis_client, flush_seconds=0.01)
    tracker.record(3)
    assert tracker.close() in (0, 1)  # the flusher may have sent it first
    tracker.record(3)
    assert tracker._flusher is not None and not tracker._flusher.is_alive()
    assert redis_client.zscore(POPULARITY_KEY, 3) == 1
    assert tracker.flush() == 1
    assert redis_client.zscore(POPULARITY_KEY, 3) == 2
