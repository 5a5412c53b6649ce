"""The three charts benchmarks.md shows, drawn with matplotlib (Agg, no display) as small PNGs.

Product detail latency percentiles per arm, requests/s per arm, and the cold arm's hit ratio second
by second. Each function takes the run's results and a path, and writes one file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from .endpoints import DETAIL, HEALTHZ  # noqa: E402

SIZE = (7.0, 3.4)
DPI = 100
PERCENTILES = (("p50", "p50"), ("p95", "p95"), ("p99", "p99"), ("p99_9", "p99.9"))


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)
    return path


def _main_endpoint(arm: dict) -> tuple[str, dict]:
    for name in (DETAIL, HEALTHZ):
        if name in arm["endpoints"]:
            return name, arm["endpoints"][name]
    return "", {}


def latency(results: dict, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=SIZE)
    arms = [(name, _main_endpoint(arm)) for name, arm in results["arms"].items()]
    width = 0.8 / len(PERCENTILES)
    for offset, (key, label) in enumerate(PERCENTILES):
        xs = [index + offset * width for index in range(len(arms))]
        values = [row.get(key) or 0 for _, (_, row) in arms]
        axes.bar(xs, values, width, label=label)
    axes.set_xticks([index + 0.4 - width / 2 for index in range(len(arms))])
    labels = [f"{name}\n{'/healthz' if ep == HEALTHZ else 'product'}" for name, (ep, _) in arms]
    axes.set_xticklabels(labels, fontsize="small")
    axes.set_yscale("log")
    axes.set_ylabel("ms (log scale)")
    axes.set_title("Product detail latency per arm (floor: /healthz)")
    axes.legend(ncols=4, fontsize="small")
    return _save(figure, path)


def throughput(results: dict, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=SIZE)
    names = list(results["arms"])
    totals = [results["arms"][name]["endpoints"].get("Aggregated", {}).get("rps", 0) for name in names]
    main = [_main_endpoint(results["arms"][name])[1].get("rps", 0) for name in names]
    xs = range(len(names))
    axes.bar([x - 0.2 for x in xs], totals, 0.4, label="all requests")
    axes.bar([x + 0.2 for x in xs], main, 0.4, label="product detail (floor: /healthz)")
    for x, value in zip(xs, totals, strict=True):
        axes.annotate(f"{value:,.0f}", (x - 0.2, value), ha="center", va="bottom", fontsize="small")
    axes.set_xticks(list(xs))
    axes.set_xticklabels(names, fontsize="small")
    axes.set_ylabel("requests/s")
    axes.set_title("Throughput per arm")
    axes.legend(fontsize="small")
    return _save(figure, path)


def cold_hit_ratio(results: dict, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=SIZE)
    points = results["arms"].get("cold", {}).get("timeline", [])
    for key, label in (("product_hit_ratio", "product detail"), ("hit_ratio", "all cached reads")):
        shown = [(p["t"], 100 * p[key]) for p in points if p[key] is not None]
        axes.plot([t for t, _ in shown], [v for _, v in shown], label=label)
    axes.set_ylim(0, 100)
    axes.set_xlabel("seconds since the load started")
    axes.set_ylabel("hit ratio in that second, %")
    axes.set_title("Cold arm: hit ratio over time")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    return _save(figure, path)


def draw(results: dict, charts_dir: Path) -> dict[str, Path]:
    charts_dir.mkdir(parents=True, exist_ok=True)
    return {
        "latency": latency(results, charts_dir / "product_detail_latency.png"),
        "throughput": throughput(results, charts_dir / "throughput.png"),
        "cold": cold_hit_ratio(results, charts_dir / "cold_hit_ratio.png"),
    }
