"""benchmarks.md and its charts, regenerated from one run's results.json.

``python -m loadtest.report loadtest/results/<timestamp>`` rewrites the charts (``loadtest/charts/``)
and ``benchmarks.md`` from saved results; ``loadtest.run`` calls the same ``write`` after a run. The
prose lives in ``benchmarks.md.in`` beside this module; here are the numbers, the tables and the
targets, each stated with whether the run met it.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from dataclasses import dataclass
from pathlib import Path

from . import ceiling
from .arms import ARMS
from .endpoints import CHECK_EVERY, DETAIL, HEALTHZ, MAX_PAGES, PERSONA_ENDPOINTS
from .probes import all_resources, hit_ratio
from .server import ROOT
from .workload import Zipf, catalog_ids

TEMPLATE = Path(__file__).with_name("benchmarks.md.in")
NOISY_CORES = 0.2
"""Other processes using this many cores during an arm are worth a sentence in the report."""

ROUND_ARMS = ("detail", "detail-off", "floor")
"""The side-by-side comparison the hot-path targets judge, run in several rounds on a noisy machine."""

REDIS_ROW_MIN = 0.02
"""Commands issued less often than this per request in every arm are not given a row of their own."""
ENDPOINT_ORDER = [name for names in PERSONA_ENDPOINTS.values() for name in names]


@dataclass
class Target:
    claim: str
    measured: str
    met: bool | None

    def line(self) -> str:
        verdict = {True: "**met**", False: "**not met**", None: "**not measured**"}[self.met]
        return f"- {self.claim}: {self.measured} — {verdict}"


# --- number formatting ----------------------------------------------------------------------------


def ms(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def pct(value: float | None, places: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{places}f}%"


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


# --- derived numbers ------------------------------------------------------------------------------


def endpoint(arm: dict | None, name: str) -> dict:
    return (arm or {}).get("endpoints", {}).get(name, {})


def total(arm: dict) -> dict:
    return endpoint(arm, "Aggregated")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def redis_per_request(arm: dict) -> float | None:
    requests = total(arm).get("requests")
    if not requests:
        return None
    background = arm.get("idle_redis_per_s", 0.0) * arm.get("wall_seconds", 0.0)
    return max(0.0, arm["redis"]["total"] - background) / requests


def statements_per_1000(arm: dict) -> float | None:
    return ratio(arm["metrics"]["statements"] * 1000, total(arm).get("requests"))


def cache_ratio(arm: dict, resource: str | None = None) -> float | None:
    cache = arm["metrics"]["cache"]
    counts = all_resources(cache) if resource is None else cache.get(resource, {})
    return hit_ratio(counts)


def load_share(arm: dict) -> float | None:
    cpu = arm.get("cpu") or {}
    return ratio(cpu.get("load"), (cpu.get("load") or 0) + (cpu.get("server") or 0))


# --- targets --------------------------------------------------------------------------------------


def speedup_targets(label: str, cached: dict, uncached: dict) -> list[Target]:
    speedup = ratio(cached.get("rps"), uncached.get("rps"))
    p95 = ratio(cached.get("p95"), uncached.get("p95"))
    return [
        Target(
            f"Cached vs uncached product detail, requests/s, {label}: at least 3x",
            f"{rate(cached.get('rps'))} vs {rate(uncached.get('rps'))} req/s = {times(speedup)}",
            None if speedup is None else speedup >= 3,
        ),
        Target(
            f"Cached vs uncached product detail, p95, {label}: at most a third",
            f"{ms(cached.get('p95'))} vs {ms(uncached.get('p95'))} ms = {times(p95)}",
            None if p95 is None else p95 <= 1 / 3,
        ),
    ]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def comparison_rounds(results: dict) -> list[dict]:
    """Each round's detail, detail-off and floor endpoint stats: the main run's arms, then the repeats."""
    first = {name: results["arms"].get(name) for name in ROUND_ARMS}
    rounds = [first, *results.get("rounds", [])]
    return [
        {
            "detail": endpoint(arms.get("detail"), DETAIL),
            "detail-off": endpoint(arms.get("detail-off"), DETAIL),
            "floor": endpoint(arms.get("floor"), HEALTHZ),
        }
        for arms in rounds
    ]


def round_target(
    claim: str, rounds: list[dict], top: tuple, bottom: tuple, goal, fmt, unit: str, show=times
) -> Target:
    """A target judged on the median over rounds of ``top / bottom`` (each an (arm, statistic) pair)."""
    measured = []
    for one in rounds:
        a, b = one[top[0]].get(top[1]), one[bottom[0]].get(bottom[1])
        if ratio(a, b) is not None:
            measured.append((ratio(a, b), a, b))
    if not measured:
        return Target(claim, "–", None)
    middle = median([value for value, _, _ in measured])
    _, a, b = sorted(measured)[(len(measured) - 1) // 2]
    text = f"{fmt(a)} vs {fmt(b)} {unit} = {show(middle)}"
    if len(measured) > 1:
        each = ", ".join(show(value) for value, _, _ in measured)
        text = (
            f"median of {len(measured)} rounds {show(middle)} (rounds in order: {each}; "
            f"the median round: {fmt(a)} vs {fmt(b)} {unit})"
        )
    return Target(claim, text, goal(middle))


def targets(results: dict) -> list[Target]:
    arms = results["arms"]
    rounds = comparison_rounds(results)
    hits = cache_ratio(arms["warm"], "product") if "warm" in arms else None
    overall = cache_ratio(arms["warm"]) if "warm" in arms else None
    mixed = "mixed workload (warm vs off)"
    alone = "product detail alone (detail vs detail-off)"
    return [
        *speedup_targets(mixed, endpoint(arms.get("warm"), DETAIL), endpoint(arms.get("off"), DETAIL)),
        round_target(
            f"Cached vs uncached product detail, requests/s, {alone}: at least 3x",
            rounds,
            ("detail", "rps"),
            ("detail-off", "rps"),
            lambda r: r >= 3,
            rate,
            "req/s",
        ),
        round_target(
            f"Cached vs uncached product detail, p95, {alone}: at most a third",
            rounds,
            ("detail", "p95"),
            ("detail-off", "p95"),
            lambda r: r <= 1 / 3,
            ms,
            "ms",
        ),
        round_target(
            "Cached product detail within 85% of the /healthz floor's requests/s (detail vs floor)",
            rounds,
            ("detail", "rps"),
            ("floor", "rps"),
            lambda r: r >= 0.85,
            rate,
            "req/s",
            pct,
        ),
        Target(
            "Hit ratio at least 99% in warm steady state (product detail, whole warm arm)",
            f"{pct(hits, 2)} (all resources: {pct(overall, 2)})",
            None if hits is None else hits >= 0.99,
        ),
        *browsing_targets(arms),
        *whole_mix_targets(arms.get("warm"), arms.get("off")),
    ]


BROWSING = {"product_list": "product list", "reviews": "review page", "category_tree": "category tree"}
BROWSING["category"] = "category detail"


def browsing_targets(arms: dict) -> list[Target]:
    """Each browsing resource's hit ratio in the warm mixed arm: at least 90%."""
    if "warm" not in arms:
        return []
    found = []
    for resource, label in BROWSING.items():
        ratio_ = cache_ratio(arms["warm"], resource)
        served = sum(arms["warm"]["metrics"]["cache"].get(resource, {}).values())
        found.append(
            Target(
                f"Hit ratio of {label}s in the warm mixed arm: at least 90%",
                f"{pct(ratio_)} of {served:,.0f} reads",
                None if ratio_ is None else ratio_ >= 0.9,
            )
        )
    return found


def whole_mix_targets(warm: dict | None, off: dict | None) -> list[Target]:
    if not warm or not off:
        return []
    cached, uncached = total(warm), total(off)
    speedup = ratio(cached.get("rps"), uncached.get("rps"))
    return [
        Target(
            "Whole mixed workload, warm vs off, requests/s: at least 3x",
            f"{rate(cached.get('rps'))} vs {rate(uncached.get('rps'))} req/s = {times(speedup)}",
            None if speedup is None else speedup >= 3,
        ),
        Target(
            "Whole mixed workload: the warm arm's p99 below the off arm's p50",
            f"{ms(cached.get('p99'))} vs {ms(uncached.get('p50'))} ms",
            None
            if cached.get("p99") is None or uncached.get("p50") is None
            else cached["p99"] < uncached["p50"],
        ),
    ]


def page_cost_lines(results: dict) -> list[str]:
    """What one list-page hit costs, near cache on and off (``loadtest.page_costs``)."""
    lines = []
    for measured in results.get("page_costs") or []:
        reads = measured["reads"]
        trips = sorted({read["redis_round_trips"] for read in reads})
        sql = sorted({read["sql_statements"] for read in reads})
        states = sorted({read["x_cache"] for read in reads})
        near = "on" if measured["near_cache_entries"] else "off"
        lines.append(
            f"- One list-page hit, near cache {near} ({len(reads)} first pages, {'/'.join(states)}): "
            f"{'–'.join(map(str, trips))} Redis round trips, {'–'.join(map(str, sql))} SQL statements."
        )
    return lines


def cpu_ms_per_request(arm: dict | None) -> float | None:
    """gunicorn CPU milliseconds per request: the server's cost, less sensitive to a noisy machine."""
    if not arm or not arm.get("cpu"):
        return None
    return ratio(arm["cpu"]["server"] * 1000, total(arm).get("rps"))


def cost_line(arms: dict) -> list[str]:
    order = ("warm", "off", "warm-heavy", "off-heavy", "detail", "detail-off", *DIAGNOSTICS, "floor")
    names = [name for name in order if name in arms]
    costs = [
        f"{name} {cpu_ms_per_request(arms[name]):.2f}" for name in names if cpu_ms_per_request(arms[name])
    ]
    if not costs:
        return []
    return [
        "- Server cost per request (gunicorn CPU ms; less sensitive than req/s to the other work on this "
        f"shared machine): {', '.join(costs)}."
    ]


def tldr(results: dict) -> str:
    arms = results["arms"]
    lines = [target.line() for target in targets(results)]
    lines += diagnostic_lines(arms) + cost_line(arms) + page_cost_lines(results) + heavy_lines(arms)
    shares = [load_share(arm) for arm in arms.values() if load_share(arm) is not None]
    if shares:
        lines.append(
            f"- The load generator used {pct(min(shares), 0)}–{pct(max(shares), 0)} of the CPU that it and "
            "the server used together: it shares the 2 cores, so compare ratios, not absolute numbers."
        )
    failures = sum(total(arm).get("failures", 0) for arm in arms.values())
    requests = sum(total(arm).get("requests", 0) for arm in arms.values())
    lines.append(f"- {requests:,} requests checked over all arms, {failures:,} failures.")
    return "\n".join(lines)


DIAGNOSTICS = {name: arm.switched_off for name, arm in ARMS.items() if arm.switched_off}
"""Diagnostic arms, and the part of the app each switches off."""


def heavy_lines(arms: dict) -> list[str]:
    """How the write-heavy arms compare with each other and with the default mix (not a target)."""
    if "warm-heavy" not in arms or "off-heavy" not in arms:
        return []
    cached, uncached = total(arms["warm-heavy"]), total(arms["off-heavy"])
    ratios = ", ".join(
        f"{BROWSING.get(resource, resource)} {pct(cache_ratio(arms['warm-heavy'], resource))}"
        for resource in ("product", *BROWSING)
    )
    return [
        f"- With 10% writes (warm-heavy vs off-heavy): {rate(cached.get('rps'))} vs "
        f"{rate(uncached.get('rps'))} req/s = {times(ratio(cached.get('rps'), uncached.get('rps')))}, "
        f"p95 {ms(cached.get('p95'))} vs {ms(uncached.get('p95'))} ms; hit ratios {ratios}."
    ]


def diagnostic_lines(arms: dict) -> list[str]:
    """What each diagnostic arm says about its part's effect on the hit path (not a target)."""
    lines = []
    with_it, floor = endpoint(arms.get("detail"), DETAIL), endpoint(arms.get("floor"), HEALTHZ)
    for name, part in DIAGNOSTICS.items():
        without = endpoint(arms.get(name), DETAIL)
        if not with_it or not without:
            continue
        gain, of_floor = ratio(without["rps"], with_it["rps"]), ratio(without["rps"], floor.get("rps"))
        cpu_with, cpu_without = cpu_ms_per_request(arms["detail"]), cpu_ms_per_request(arms[name])
        cost = (
            f"; gunicorn CPU per request {ms(cpu_with)} ms with it, {ms(cpu_without)} ms without"
            if cpu_without
            else ""
        )
        lines.append(
            f"- Diagnostic, not a target: with {part} off, cached product detail served "
            f"{rate(without['rps'])} req/s against {rate(with_it['rps'])} with it ({times(gain)}), "
            f"{pct(of_floor)} of the floor{cost}."
        )
    return lines


# --- sections -------------------------------------------------------------------------------------


def environment(results: dict) -> str:
    env = results["environment"]
    packages = ", ".join(f"{name} {version}" for name, version in env["packages"].items())
    rows = [
        ["date", env["date"]],
        ["machine", f"{env['cores']} cores, {env['memory_gib']} GiB, {env['cpu_model']}, {env['kernel']}"],
        ["load average before the run", " / ".join(map(str, env["load_average_before"]))],
        ["Python", env["python"]],
        ["PostgreSQL", env["postgresql"]],
        ["Redis", env["redis"]],
        ["packages", packages],
        ["code", f"git `{env['git']}`"],
    ]
    return table(["what", "value"], rows)


def rounds_text(results: dict) -> str:
    """The side-by-side comparison round by round: what the hot-path targets' medians are taken over."""
    rounds = comparison_rounds(results)
    if len(rounds) < 2:
        return "One round: the targets above are that round's ratios."
    rows = []
    for number, one in enumerate(rounds, start=1):
        detail, off, floor = one["detail"], one["detail-off"], one["floor"]
        rows.append(
            [
                str(number),
                rate(detail.get("rps")),
                rate(off.get("rps")),
                rate(floor.get("rps")),
                times(ratio(detail.get("rps"), off.get("rps"))),
                times(ratio(detail.get("p95"), off.get("p95"))),
                pct(ratio(detail.get("rps"), floor.get("rps"))),
            ]
        )
    header = ["round", "detail req/s", "detail-off req/s", "floor req/s", "cached / uncached", "p95 ratio"]
    note = (
        f"The machine is shared, so **detail**, **detail-off** and **floor** ran in {len(rounds)} rounds "
        "(round 1 inside the list above, the others after it, each arm on a fresh server every time); the "
        "product-detail targets above are judged on the median of the rounds' ratios. The other tables "
        "show round 1."
    )
    return note + "\n\n" + table([*header, "of floor"], rows)


def detail_table(arms: dict) -> str:
    rows = []
    for name, arm in arms.items():
        row = endpoint(arm, DETAIL) or endpoint(arm, HEALTHZ)
        label = f"**{name}**" if endpoint(arm, DETAIL) else f"**{name}** (`/healthz`)"
        if row:
            cells = [ms(row[key]) for key in ("p50", "p95", "p99", "p99_9")]
            rows.append([label, rate(row["rps"]), *cells, str(row["failures"])])
    return table(["arm", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "failures"], rows)


def arm_table(arms: dict) -> str:
    rows = []
    for name, arm in arms.items():
        cpu = arm.get("cpu") or {}
        rows.append(
            [
                f"**{name}**",
                arm["title"],
                rate(total(arm).get("rps")),
                str(total(arm).get("failures", "–")),
                pct(cache_ratio(arm, "product")),
                pct(cache_ratio(arm)),
                rate(statements_per_1000(arm)),
                f"{redis_per_request(arm):.2f}" if redis_per_request(arm) is not None else "–",
                f"{cpu.get('server', 0):.2f}",
                ms(cpu_ms_per_request(arm)),
                f"{cpu.get('load', 0):.2f}",
            ]
        )
    header = ["arm", "what", "req/s (all)", "failures", "hit ratio, product", "hit ratio, all"]
    header += ["SQL per 1,000 req", "Redis cmds per req", "gunicorn cores", "gunicorn CPU ms per req"]
    header += ["Locust cores"]
    return table(header, rows)


def resource_table(arms: dict) -> str:
    cached = {name: arm for name, arm in arms.items() if name in ("warm", "cold", "warm-heavy", "detail")}
    resources = sorted({resource for arm in cached.values() for resource in arm["metrics"]["cache"]})
    rows = []
    for resource in resources:
        cells = []
        for arm in cached.values():
            counts = arm["metrics"]["cache"].get(resource, {})
            served = sum(counts.values())
            cells.append(f"{pct(hit_ratio(counts))} of {served:,.0f}" if served else "–")
        rows.append([resource, *cells])
    return table(["resource", *(f"{name} (hit ratio of reads)" for name in cached)], rows)


def cold_text(arms: dict) -> str:
    cold = arms.get("cold")
    if not cold or not cold["timeline"]:
        return "The cold arm was not run."
    points = cold["timeline"]
    marks = [p for p in points if any(abs(p["t"] - mark) < 0.6 for mark in (1, 2, 5, 10, 20, 30, 45, 60, 90))]
    rows = [
        [f"{p['t']:.0f}", pct(p["product_hit_ratio"]), pct(p["hit_ratio"]), rate(p["statements"])]
        for p in marks
    ]
    intro = (
        "The cache purged (`flask --app api cache purge`) just before the load; hit ratio in each second "
        "(from `/metrics` sampled once a second) and SQL statements sent in that second:"
    )
    return intro + "\n\n" + table(["second", "product hit ratio", "all hit ratio", "SQL statements/s"], rows)


def redis_table(arms: dict) -> str:
    commands = sorted(
        {command for arm in arms.values() for command, calls in arm["redis"]["commands"].items() if calls}
    )
    rows = []
    for command in commands:
        per_request = []
        for arm in arms.values():
            requests = total(arm).get("requests") or 0
            per_request.append(ratio(arm["redis"]["commands"].get(command, 0), requests) or 0.0)
        if max(per_request) >= REDIS_ROW_MIN:
            rows.append([f"`{command}`", *(f"{value:.2f}" if value else "–" for value in per_request)])
    totals = [redis_per_request(arm) for arm in arms.values()]
    rows.append(
        [
            "**all, less the idle rate**",
            *(f"**{value:.2f}**" if value is not None else "–" for value in totals),
        ]
    )
    note = (
        "Calls per request during each arm, for the whole Redis server (commands run inside Lua scripts "
        f"count too; commands under {REDIS_ROW_MIN} per request in every arm, mostly other clients', are "
        "left out of the rows but not the total). The **off** arm has no cache, so what it shows is the "
        "rest of the app: the rate limiter's leases (`evalsha` running `get` and `incrby`, once per lease "
        "of up to 100 requests) and the view counter's batched `zincrby`. With the cache on, "
        "`client|caching` marks the reads a near cache asked Redis to track."
    )
    return note + "\n\n" + table(["command", *arms], rows)


def cpu_table(arms: dict) -> str:
    rows = []
    for name, arm in arms.items():
        cpu = arm.get("cpu") or {}
        if not cpu:
            continue
        cells = [f"{cpu[key]:.2f}" for key in ("server", "load", "servers", "other", "machine")]
        rows.append([f"**{name}**", *cells, pct(load_share(arm), 0)])
    header = ["arm", "gunicorn", "Locust", "PostgreSQL + Redis", "other processes", "machine busy"]
    return table([*header, "Locust share of Locust + gunicorn"], rows)


def cpu_text(results: dict) -> str:
    opts = results["options"]
    cpus = [arm.get("cpu") or {} for arm in results["arms"].values()]
    busiest = max((cpu.get("load", 0.0) for cpu in cpus), default=0.0)
    others = max((cpu.get("other", 0.0) for cpu in cpus), default=0.0)
    text = (
        f"Cores used on average while each arm's load ran (of {results['environment']['cores']}), from "
        f"CPU seconds of the process trees sampled once a second. Locust ran in {opts['processes']} "
        f"process(es) and used at most {busiest:.2f} cores in any arm (one process can use one core). "
        'PostgreSQL and Redis count all of their clients, and "other processes" is everything else on '
        "this shared machine."
    )
    if others >= NOISY_CORES:
        text += (
            f" Other processes took up to {others:.2f} cores during an arm: the machine was busy with "
            "other work, which is why gunicorn got less than the two cores."
        )
    return text


def endpoint_tables(arms: dict) -> str:
    parts = []
    for name, arm in arms.items():
        names = [n for n in ENDPOINT_ORDER if n in arm["endpoints"]] + ["Aggregated"]
        rows = []
        for endpoint_name in names:
            row = arm["endpoints"][endpoint_name]
            cells = [ms(row[key]) for key in ("p50", "p95", "p99", "p99_9")]
            rows.append(
                [endpoint_name, f"{row['requests']:,}", rate(row["rps"]), *cells, str(row["failures"])]
            )
        header = ["endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "failures"]
        parts.append(f"**{name}** — {arm['title']}\n\n" + table(header, rows))
    return "\n\n".join(parts)


PLUMBING = ("(threading.py)", "(concurrent/futures/thread.py)")
"""Frames every sample passes through (thread start-up): left out of the top-functions tables."""


def function_rows(entries: list, limit: int, own: dict | None = None) -> list[list[str]]:
    shown = [(label, share) for label, share in entries if not label.endswith(PLUMBING)][:limit]
    if own is None:
        return [[f"`{label}`", pct(share)] for label, share in shown]
    return [[f"`{label}`", pct(share), pct(own.get(label))] for label, share in shown]


def profile_section(results: dict) -> str:
    profile = results.get("profile")
    if not profile:
        return "Not profiled in this run (`--profile-seconds 0`)."
    if not profile.get("ok"):
        return f"The profile failed: `{profile.get('error', '')}`"
    gil, active = profile["gil"], profile["active"]
    intro = (
        f"py-spy (`record --nonblocking --function`, {profile['rate']} samples/s) on one of the two "
        f"workers, {profile['seconds']} s with `--gil` (only the thread holding the GIL: where the Python "
        f"CPU goes; {gil['samples']:,} samples), then {profile['seconds']} s of every active thread (also "
        "system calls such as socket sends, and threads waiting for the GIL; "
        f"{active['samples']:,} samples). After the measured arms, against a fresh server warmed by "
        f"{profile['warm']} and loaded with shoppers only (no revalidation, no writes): "
        f"{pct(profile['product_hit_ratio'], 2)} of product reads were hits. Share of samples whose stack "
        "passes through each component (a sample can count in several):"
    )
    active_shares = dict(active["components"])
    rows = [[name, pct(share), pct(active_shares.get(name))] for name, share in gil["components"]]
    components = table(["component", "GIL samples", "active-thread samples"], rows)
    header = ["function (file)", "cumulative", "self"]
    top = table(header, function_rows(gil["cumulative"], 25, dict(gil["self"])))
    own = table(["function (file)", "self"], function_rows(gil["self"], 15))
    waits = table(["function (file)", "self"], function_rows(active["self"], 8))
    return (
        f"{intro}\n\n{components}\n\nTop functions by cumulative time, holding the GIL (thread start-up "
        f"frames left out):\n\n{top}\n\nTop functions by self time, holding the GIL:\n\n{own}\n\n"
        f"Top functions by self time over every active thread (system calls and GIL waits show "
        f"here):\n\n{waits}"
    )


def seed_rows(results: dict) -> str:
    seeded = results["catalog"]
    env = results["environment"]
    machine = f"{env['cores']} cores, {env['memory_gib']:.0f} GiB, {env['date'][:10]}"
    result = (
        f"{seeded['seed_seconds']:.1f} s"
        if seeded["seeded_now"]
        else "already seeded (not timed in this run)"
    )
    line = f"| seed {seeded['products']:,} products + {seeded['reviews']:,} reviews | {result} | "
    line += f"`{seeded['seed_command']}` | {machine} |"
    earlier = (
        "| seed 100k products + 1M reviews | 19–26 s (three runs, other load on the machine) | "
        "`flask --app api seed --products 100000 --reviews 1000000 --seed 42` | 2 cores, 24 GiB, 2026-11-27 |"
    )
    return line + "\n" + earlier


def arm_list(results: dict) -> str:
    return "\n".join(f"  - **{name}**: {arm['title']}" for name, arm in results["arms"].items())


def warming(results: dict) -> str:
    warm = next(
        (arm["prepared"].get("warm") for arm in results["arms"].values() if "warm" in arm["prepared"]), None
    )
    if not warm:
        return "no arm was pre-warmed in this run."
    if warm["method"] == "command":
        text = f'`{warm["command"]}` (took {warm["seconds"]} s; it said: "{warm["output"]}") after a purge.'
        if processes := warm.get("processes"):
            text += (
                f" Then the arm's own users ran with another seed for {processes['seconds']} s, unmeasured,"
                " so each gunicorn worker's near cache holds what a running server's would (the command"
                " fills Redis, not the workers)."
            )
        return text
    windows = ", ".join(pct(r) for r in warm["window_hit_ratios"] if r is not None)
    failed = warm.get("after_failed_command")
    why = (
        f" (`{failed['command']}` failed: {failed['error'][-200:]})"
        if failed
        else " (the app has no `cache warm`)"
    )
    return (
        f"by load{why}: the arm's workload with another seed ran for {warm['seconds']} s, until the hit "
        f"ratio per {warm['window_seconds']:.0f} s window stopped rising ({windows})."
    )


def skew(results: dict) -> tuple[str, str]:
    opts = results["options"]
    ids_file = Path(opts["ids_file"])
    ids = catalog_ids(int(opts["catalog_size"]), str(ids_file) if ids_file.exists() else None)
    zipf = Zipf(ids, float(opts["zipf_exponent"]), int(opts["popularity_seed"]))
    return pct(zipf.share_of_top(len(ids) // 100), 0), pct(zipf.share_of_top(len(ids) // 10), 0)


# --- assembling -----------------------------------------------------------------------------------


def relative(path: Path, start: Path) -> str:
    try:
        return str(path.resolve().relative_to(start.resolve()))
    except ValueError:
        return path.name


QUICK_NOTE = (
    "\n> **A quick run** (`--quick`): every arm once, for a few seconds, on a small catalog. Its numbers "
    "show the shape, not the size, of each effect; rerun without `--quick` before quoting any.\n"
)


def render(results: dict, chart_paths: dict[str, Path], output: Path, results_dir: Path) -> str:
    opts, arms = results["options"], results["arms"]
    top1, top10 = skew(results)
    seeded = results["catalog"]
    rate_limits = (
        "The app's per-client rate limits were kept as configured."
        if opts["keep_rate_limits"]
        else "All Locust users come from 127.0.0.1, so the per-client rate-limit budgets are raised out of "
        "reach (`SHELF_RATE_LIMIT_READS`/`_WRITES`); the limiter still runs and leases its tokens from Redis."
    )
    env = results["environment"]
    values = {
        "quick_note": QUICK_NOTE if results.get("quick") else "",
        "date": env["date"],
        "machine": f"{env['cores']} cores / {env['memory_gib']:.0f} GiB",
        "command": results["command"],
        "tldr": tldr(results),
        "environment": environment(results),
        "catalog": f"{seeded['products']:,} products ({seeded['active_products']:,} active), "
        f"{seeded['reviews']:,} reviews, {seeded['categories']} categories (seed {opts['catalog_seed']}).",
        "database": opts["database_url"].rsplit("/", 1)[-1],
        "redis_db": opts["redis_url"].rsplit("/", 1)[-1],
        "rate_limits": rate_limits,
        "users": opts["users"],
        "processes": opts["processes"],
        "active_products": f"{seeded['active_products']:,}",
        "top1": top1,
        "top10": top10,
        "revalidate": pct(float(opts["revalidate_share"]), 0),
        "max_pages": MAX_PAGES,
        "check_every": CHECK_EVERY,
        "arm_list": arm_list(results),
        "warming": warming(results),
        "detail_table": detail_table(arms),
        "rounds_text": rounds_text(results),
        "arm_table": arm_table(arms),
        "resource_table": resource_table(arms),
        "cold_text": cold_text(arms),
        "redis_table": redis_table(arms),
        "cpu_table": cpu_table(arms),
        "cpu_text": cpu_text(results),
        "endpoint_tables": endpoint_tables(arms),
        "profile": profile_section(results),
        "ceiling": ceiling.markdown(results.get("ceiling")),
        "seed_rows": seed_rows(results),
        "load_share": share_range(arms),
        "results_dir": relative(results_dir, ROOT),
        **{
            key: opts[key] for key in ("shopper_weight", "browser_weight", "zipf_exponent", "writers", "seed")
        },
        **{key: opts[key] for key in ("popularity_seed", "duration", "settle")},
        "write_share": pct(float(opts["write_share"])),
    }
    values.update({f"chart_{name}": relative(path, output.parent) for name, path in chart_paths.items()})
    return string.Template(TEMPLATE.read_text()).substitute(values)


def share_range(arms: dict) -> str:
    shares = [load_share(arm) for arm in arms.values() if load_share(arm) is not None]
    return f"{pct(min(shares), 0)}–{pct(max(shares), 0)}" if shares else "an unmeasured part"


def write(results_dir: Path, charts_dir: Path, output: Path) -> None:
    from . import charts  # matplotlib is a benchmark requirement; the report's numbers need only this file

    results = json.loads((results_dir / "results.json").read_text())
    chart_paths = charts.draw(results, charts_dir)
    output.write_text(render(results, chart_paths, output, results_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, help="a loadtest/results/<timestamp> folder")
    parser.add_argument("--charts-dir", type=Path, default=Path("loadtest/charts"))
    parser.add_argument("--output", type=Path, default=Path("benchmarks.md"))
    args = parser.parse_args(argv)
    write(args.results_dir, ROOT / args.charts_dir, ROOT / args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
