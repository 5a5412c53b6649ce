"""The benchmark in one command: ``python -m loadtest.run`` (``--help`` lists every flag).

With ``DATABASE_URL`` / ``REDIS_URL`` unset it runs under ``scripts/dev_services.py`` on embedded
servers, as ``make run`` does (database ``shelf_bench``, Redis db 3). ``--quick`` runs every arm
once for a few seconds on a small catalog of its own (a few minutes in all) and still writes the
charts and ``benchmarks.md``, which then say they come from a quick run.

It seeds the benchmark catalog in its own database when empty (timing the seed), then runs the arms
one after another with the same workload, seed and duration, each against a fresh gunicorn started as
``scripts/run.sh`` starts it: the mixed workload warm, cold and with the cache off, then product
detail alone (warm) and the /healthz floor, the single-endpoint pair, and a diagnostic arm (product
detail with the rate limiter off) that shows what the limiter costs on the hit path. Raw results
(results.json, Locust's CSVs and HTML reports, server logs) go to ``loadtest/results/<timestamp>/``;
the charts under ``loadtest/charts/`` and ``benchmarks.md`` are then regenerated from them
(``python -m loadtest.report DIR`` does that step again from saved results). After the Locust arms
come the ceiling arms (``loadtest.ceiling``: the hot path on gunicorn and granian side by side,
driven by wrk; ``--ceiling-only`` runs just those, ``--ceiling-rounds 0`` skips them). Finally, unless
``--profile-seconds 0``, one worker is profiled with py-spy under product-detail hits, after and apart
from the measured arms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from . import arms, bench_catalog, ceiling, embedded, environment, page_costs, report
from .profile import profile_hit_path
from .server import ROOT

BENCH_DATABASE = "shelf_bench"
QUICK_DATABASE = "shelf_bench_quick"  # its own, smaller catalog: a full run never measures the quick one
BENCH_REDIS_DB = "3"

QUICK = {
    "duration": 10,
    "rounds": 1,
    "settle": 1.0,
    "warm_max": 30,
    "process_warmup": 5,
    "profile_seconds": 0,
    "products": 2_000,
    "reviews": 20_000,
}
"""``--quick``: every arm once, briefly, on a small catalog; a few minutes, and the report says so.
Flags given explicitly still win."""


def say(message: str) -> None:
    print(f"loadtest: {message}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n\n")[0])
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    where = p.add_argument_group("servers")
    where.add_argument(
        "--database-url",
        default=env("SHELF_BENCH_DATABASE_URL"),
        help="benchmark database, created if missing (env SHELF_BENCH_DATABASE_URL; default: database "
        f"{BENCH_DATABASE} on DATABASE_URL's server, or on an embedded PostgreSQL when that is unset)",
    )
    where.add_argument(
        "--redis-url",
        default=env("SHELF_BENCH_REDIS_URL"),
        help="Redis db for the app, cache purged between arms (env SHELF_BENCH_REDIS_URL; default: db "
        f"{BENCH_REDIS_DB} on REDIS_URL's server, or on an embedded Valkey when that is unset)",
    )
    where.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: every arm once for 10 s on a 2,000-product catalog (its own database); "
        "the report says it is a quick run",
    )
    where.add_argument("--keep-rate-limits", action="store_true", help="keep the app's per-client budgets")
    seeding = p.add_argument_group("catalog (seeded only when the database is empty)")
    seeding.add_argument("--products", type=int, default=100_000, help="products to seed")
    seeding.add_argument("--reviews", type=int, default=1_000_000, help="reviews to seed")
    seeding.add_argument("--catalog-seed", type=int, default=42, help="the seed command's --seed")
    load = p.add_argument_group("load")
    load.add_argument("--arms", default=",".join(arms.ARMS), help="comma-separated, run in this order")
    load.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the side-by-side comparison (detail, detail-off, floor; each arm once per round,"
        " the first round within --arms): targets are judged on the median of the rounds' ratios",
    )
    load.add_argument("--duration", type=int, default=60, help="seconds per arm")
    load.add_argument("--settle", type=float, default=5.0, help="pause before each arm (idle Redis rate)")
    load.add_argument("--users", type=int, default=32, help="Locust users (enough to saturate the server)")
    load.add_argument("--spawn-rate", type=float, default=0, help="users/s; 0: all at once")
    load.add_argument("--processes", type=int, default=1, help="Locust processes")
    load.add_argument("--seed", type=int, default=42, help="seed of the users' random streams")
    load.add_argument("--popularity-seed", type=int, default=42, help="seed of which products are popular")
    load.add_argument("--zipf-exponent", type=float, default=1.0, help="skew of product popularity")
    load.add_argument("--write-share", type=float, default=0.01, help="writes as a share of requests")
    load.add_argument("--revalidate-share", type=float, default=0.2, help="If-None-Match share of reads")
    load.add_argument("--shopper-weight", type=int, default=7, help="shoppers per 10 users (with browsers)")
    load.add_argument("--browser-weight", type=int, default=3, help="browsers per 10 users")
    load.add_argument("--writers", type=int, default=1, help="writer users (fixed count)")
    warm = p.add_argument_group("warming (by load, when the app has no `cache warm --scope all`)")
    warm.add_argument("--warm-by-workload", action="store_true", help="even when `cache warm` exists")
    warm.add_argument("--warm-max", type=int, default=240, help="seconds at most")
    warm.add_argument(
        "--process-warmup",
        type=int,
        default=60,
        help="after `cache warm`, seconds of the arm's own load so the workers' near caches fill; 0: none",
    )
    warm.add_argument("--warm-window", type=float, default=5.0, help="seconds per hit-ratio window")
    warm.add_argument("--warm-windows", type=int, default=6, help="compare with this many windows back")
    warm.add_argument("--warm-rise", type=float, default=0.01, help="less rise than this is a plateau")
    ceiling = p.add_argument_group("the server's ceiling (wrk; gunicorn and granian side by side)")
    ceiling.add_argument("--ceiling-rounds", type=int, default=3, help="interleaved rounds; 0: skip")
    ceiling.add_argument("--ceiling-only", action="store_true", help="only the ceiling arms (ceiling.md)")
    ceiling.add_argument("--ceiling-duration", type=int, default=20, help="seconds per ceiling arm")
    ceiling.add_argument("--ceiling-warmup", type=int, default=5, help="wrk seconds before each")
    ceiling.add_argument("--wrk-threads", type=int, default=2, help="wrk -t")
    ceiling.add_argument("--wrk-connections", type=int, default=32, help="wrk -c")
    out = p.add_argument_group("output")
    out.add_argument("--results-dir", type=Path, default=Path("loadtest/results"), help="raw results")
    out.add_argument("--charts-dir", type=Path, default=Path("loadtest/charts"), help="PNG charts")
    out.add_argument("--output", type=Path, default=Path("benchmarks.md"), help="the report")
    out.add_argument("--profile-seconds", type=int, default=20, help="per py-spy mode; 0: no profile")
    out.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    return p


def options_record(opts: argparse.Namespace) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(opts).items()}


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def resolve_servers(opts: argparse.Namespace, environ: dict[str, str]) -> bool:
    """Fill in the URLs not given, from DATABASE_URL / REDIS_URL's servers; False if one is unset
    (then the run must go under scripts/dev_services.py, which starts embedded servers for it)."""
    database = QUICK_DATABASE if opts.quick else BENCH_DATABASE
    if not opts.database_url and environ.get("DATABASE_URL"):
        opts.database_url = with_path(environ["DATABASE_URL"], "/" + database)
    if not opts.redis_url and environ.get("REDIS_URL"):
        opts.redis_url = with_path(environ["REDIS_URL"], "/" + BENCH_REDIS_DB)
    return bool(opts.database_url and opts.redis_url)


def run(opts: argparse.Namespace) -> Path:
    results_dir = ROOT / opts.results_dir / datetime.now().strftime("%Y%m%d-%H%M%S")
    results_dir.mkdir(parents=True)
    base_env = {**os.environ, "DATABASE_URL": opts.database_url, "REDIS_URL": opts.redis_url}
    say(f"results in {results_dir.relative_to(ROOT)}")
    say("catalog: ensure-db, db upgrade, seed --if-empty")
    seeded = bench_catalog.prepare(base_env, opts.products, opts.reviews, opts.catalog_seed)
    say(f"catalog: seeded in {seeded.seed_seconds:.1f}s" if seeded.seeded_now else "catalog: already seeded")
    opts.ids_file = results_dir / "catalog_ids.txt"
    opts.catalog_size = bench_catalog.export_active_ids(opts.database_url, opts.ids_file)
    results = {
        "command": " ".join(["python -m loadtest.run", *sys.argv[1:]]),
        "quick": opts.quick,
        "options": options_record(opts),
        "environment": environment.describe(opts.database_url, opts.redis_url),
        "catalog": seeded.as_dict(),
        "arms": {},
        "rounds": [],
    }
    if opts.ceiling_only:
        results["ceiling"] = run_ceiling(opts, base_env, results_dir)
        save(results, results_dir)
        (results_dir / "ceiling.md").write_text(ceiling.markdown(results["ceiling"]) + "\n")
        say(f"wrote {(results_dir / 'ceiling.md').relative_to(ROOT)}")
        return results_dir
    say("page costs: Redis round trips and SQL statements of one list-page hit")
    results["page_costs"] = page_costs.measure(opts.database_url, opts.redis_url)
    for name in opts.arms.split(","):
        results["arms"][name] = run_one(name, opts, base_env, results_dir / name)
        save(results, results_dir)
    if all(name in results["arms"] for name in report.ROUND_ARMS):
        for number in range(2, opts.rounds + 1):
            repeat: dict = {}
            results["rounds"].append(repeat)
            for name in report.ROUND_ARMS:
                repeat[name] = run_one(name, opts, base_env, results_dir / f"round{number}" / name, number)
                save(results, results_dir)
    results["ceiling"] = run_ceiling(opts, base_env, results_dir)
    save(results, results_dir)
    if opts.profile_seconds > 0:
        say(f"profile: py-spy on one worker, {opts.profile_seconds}s of product-detail hits")
        results["profile"] = profile_hit_path(opts, base_env, results_dir / "profile")
        save(results, results_dir)
    report.write(results_dir, ROOT / opts.charts_dir, ROOT / opts.output)
    say(f"wrote {opts.output} and charts in {opts.charts_dir}")
    return results_dir


def run_ceiling(opts: argparse.Namespace, base_env: dict, results_dir: Path) -> dict | None:
    """The ceiling arms (loadtest.ceiling), or why they were skipped."""
    if opts.ceiling_rounds <= 0:
        return None
    if missing := ceiling.wrk_missing():
        say(f"ceiling: SKIPPED, {missing}")
        return {"skipped": missing}
    options = {"duration": opts.ceiling_duration, "warmup": opts.ceiling_warmup}
    options |= {"wrk_threads": opts.wrk_threads, "wrk_connections": opts.wrk_connections}
    return {"options": options, "rounds": ceiling.run_rounds(opts, base_env, results_dir / "ceiling", say)}


def run_one(name: str, opts: argparse.Namespace, base_env: dict, out_dir: Path, number: int = 1) -> dict:
    label = f"arm {name}" + (f" (round {number})" if number > 1 else "")
    say(f"{label}: {arms.ARMS[name].title}, {opts.duration}s")
    started = time.monotonic()
    result = arms.run_arm(arms.ARMS[name], opts, base_env, out_dir)
    say(f"{label}: done in {time.monotonic() - started:.0f}s")
    return result


def save(results: dict, results_dir: Path) -> None:
    (results_dir / "results.json").write_text(json.dumps(results, indent=2, default=str))


def stop_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM (dev_services passing on a Ctrl-C or a stop) unwinds like Ctrl-C: the arm's server stops."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    argv = sys.argv[1:] if argv is None else argv
    opts = parser().parse_args(argv)
    if opts.quick:
        quick = parser()
        quick.set_defaults(**QUICK)
        opts = quick.parse_args(argv)
    if not resolve_servers(opts, dict(os.environ)):
        embedded.rerun_on_embedded_servers(
            "loadtest.run", argv, QUICK_DATABASE if opts.quick else BENCH_DATABASE
        )
    unknown = set(opts.arms.split(",")) - set(arms.ARMS)
    if unknown:
        parser().error(f"unknown arms: {', '.join(sorted(unknown))}; choose from {', '.join(arms.ARMS)}")
    run(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
