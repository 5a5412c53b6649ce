"""Latency histograms with 1% resolution, because Locust's own percentiles are whole milliseconds.

Locust rounds response times below 100 ms to the millisecond, so a cached read's p50 of 1.4 ms and
one of 1.6 ms look the same. Each request's time is added to a log-spaced bucket (1% wide; cheap:
a log and a dict update), per endpoint name; the counts are written as JSON when Locust quits, one
file per Locust process, and merged by the runner. Percentiles read back from the buckets are within
1% of the exact value.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

GROWTH = 1.01
"""Each bucket is 1% wider than the one below it."""

FLOOR_MS = 0.01
"""Times below this land in the first bucket."""

_LOG_GROWTH = math.log(GROWTH)


def bucket_of(ms: float) -> int:
    return max(0, int(math.log(max(ms, FLOOR_MS) / FLOOR_MS) / _LOG_GROWTH))


def bucket_value(bucket: int) -> float:
    """The middle of a bucket, in milliseconds."""
    return FLOOR_MS * GROWTH ** (bucket + 0.5)


class Histograms:
    """One histogram per endpoint name."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter] = {}

    def add(self, name: str, ms: float) -> None:
        self.counts.setdefault(name, Counter())[bucket_of(ms)] += 1

    def dump(self, path: Path) -> None:
        data = {name: {str(k): v for k, v in counts.items()} for name, counts in self.counts.items()}
        path.write_text(json.dumps(data))

    @classmethod
    def load(cls, paths: Iterable[Path]) -> Histograms:
        merged = cls()
        for path in paths:
            for name, counts in json.loads(path.read_text()).items():
                target = merged.counts.setdefault(name, Counter())
                target.update({int(k): v for k, v in counts.items()})
        return merged

    def total(self) -> Counter:
        """Every endpoint together (the "Aggregated" row)."""
        combined: Counter = Counter()
        for counts in self.counts.values():
            combined.update(counts)
        return combined


def percentiles(counts: Counter, points: Iterable[float]) -> dict[float, float | None]:
    """The value below which each fraction in ``points`` (e.g. 0.95) of the recorded times lie."""
    total = sum(counts.values())
    if not total:
        return dict.fromkeys(points)
    ordered = sorted(counts.items())
    result = {}
    for point in points:
        rank, seen = math.ceil(point * total), 0
        for bucket, count in ordered:
            seen += count
            if seen >= rank:
                result[point] = round(bucket_value(bucket), 3)
                break
    return result
