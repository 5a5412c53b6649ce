"""Shelf's Locust personas: shoppers, browsers, a writer and the /healthz floor.

    locust -f loadtest/locustfile.py --headless -u 32 -r 32 -t 60s --host http://127.0.0.1:8000 \
        [--ids-file ids.txt | --catalog-size 100000] [--zipf-exponent 1.0 --write-share 0.01 --seed 42 ...] \
        [ShopperUser BrowserUser WriterUser | FloorUser]

* **shopper** reads ``GET /v1/products/{id}``, ids drawn with Zipf popularity; when it holds an ETag
  for the id it revalidates part of the time with ``If-None-Match`` (304, or 200 if a write changed it);
* **browser** walks ``GET /v1/products`` pages (category filter, sort, a few ``next_cursor`` hops) and
  reads ``GET /v1/categories/{slug}`` and ``GET /v1/products/{id}/reviews``;
* **writer** (``--writers`` users, fixed count) sends ``--write-share`` of all requests as writes:
  ``PATCH /v1/products/{id}`` (price or stock) and ``POST /v1/products/{id}/reviews``, so cache
  invalidation happens under load;
* **floor** only reads ``/healthz``: the framework's ceiling, run as an arm of its own.

Product ids come from ``--ids-file`` (one id a line; the runner writes the active ids from the
database), or are 1..``--catalog-size``, or by default are read from the database (``DATABASE_URL``,
or the running ``make run``'s; see ``loadtest.live``): the seeded catalog deactivates about 3% of its
products, whose reads answer 404. Before the load, the server's read budget is checked: one that
would throttle the test (``make run``'s default 1,200 a minute) stops it with how to lift it, unless
``--allow-rate-limits``. Which products are popular is
fixed by ``--popularity-seed`` (a property of the catalog); ``--seed`` drives the users' own streams,
so a warm-up with another seed does not replay the measured requests. Requests are grouped by
endpoint (``name=``), never by URL. Every option is also an environment variable (``SHELF_BENCH_*``).
Users have no think time: the runner is after maximum throughput.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

from locust import FastHttpUser, constant, events, task

from loadtest import live
from loadtest.checks import Sampler, has_fields, has_id, is_page, review_of, verify
from loadtest.endpoints import (
    CATEGORY,
    CHECK_EVERY,
    DETAIL,
    HEALTHZ,
    LIST,
    MAX_PAGES,
    PATCH,
    POST_REVIEW,
    REVALIDATE,
    REVIEWS,
    TREE,
)
from loadtest.histogram import Histograms
from loadtest.workload import SORTS, WritePacer, Zipf, catalog_ids, user_rng

ETAGS_KEPT = 2000
"""ETags one shopper remembers; the hot products' ETags stay, the long tail's are forgotten."""

state: dict = {}
"""Per-process workload, built once options are parsed: the Zipf sampler, the pacer, the histograms."""

USER_INDEXES: dict[str, itertools.count] = {}
"""Numbers each persona's users in spawn order, so each one gets its own seeded stream."""


@events.init_command_line_parser.add_listener
def add_options(parser) -> None:
    group = parser.add_argument_group("Shelf workload")
    env = "SHELF_BENCH_"
    group.add_argument(
        "--catalog-size",
        type=int,
        default=0,
        env_var=env + "CATALOG_SIZE",
        help="read ids 1..N; 0 (default): the active ids in the database (DATABASE_URL, or make run's)",
    )
    group.add_argument("--ids-file", default="", env_var=env + "IDS_FILE", help="active product ids")
    group.add_argument(
        "--allow-rate-limits",
        action="store_true",
        env_var=env + "ALLOW_RATE_LIMITS",
        help="run even when the server's read budget would throttle the test",
    )
    group.add_argument("--zipf-exponent", type=float, default=1.0, env_var=env + "ZIPF_EXPONENT")
    group.add_argument("--revalidate-share", type=float, default=0.2, env_var=env + "REVALIDATE_SHARE")
    group.add_argument("--write-share", type=float, default=0.01, env_var=env + "WRITE_SHARE")
    group.add_argument("--seed", type=int, default=42, env_var=env + "SEED", help="the users' streams")
    group.add_argument("--popularity-seed", type=int, default=42, env_var=env + "POPULARITY_SEED")
    group.add_argument("--check-every", type=int, default=CHECK_EVERY, env_var=env + "CHECK_EVERY")
    group.add_argument("--max-pages", type=int, default=MAX_PAGES, env_var=env + "MAX_PAGES")
    group.add_argument("--shopper-weight", type=int, default=7, env_var=env + "SHOPPER_WEIGHT")
    group.add_argument("--browser-weight", type=int, default=3, env_var=env + "BROWSER_WEIGHT")
    group.add_argument("--writers", type=int, default=1, env_var=env + "WRITERS")
    group.add_argument("--latency-file", default="", env_var=env + "LATENCY_FILE")


@events.init.add_listener
def build_workload(environment, **_kwargs) -> None:
    options = environment.parsed_options
    if options is None:  # used as a library, without Locust's command line
        return
    if options.ids_file or options.catalog_size:
        ids = catalog_ids(options.catalog_size, options.ids_file or None)
    else:
        ids = live.active_ids(live.database_url())
        print(f"loadtest: {len(ids)} active products in the database", file=sys.stderr)  # noqa: T201
    if environment.host and not options.allow_rate_limits:
        refusal = live.budget_refusal(environment.host)
        if refusal:
            raise SystemExit(refusal)
    state.update(
        options=options,
        products=Zipf(ids, options.zipf_exponent, options.popularity_seed),
        pacer=WritePacer(options.write_share),
        histograms=Histograms(),
        token=os.environ.get("SHELF_BENCH_TOKEN") or "dev-token",
    )
    ShopperUser.weight = options.shopper_weight
    BrowserUser.weight = options.browser_weight
    WriterUser.fixed_count = options.writers


@events.request.add_listener
def record(request_type, name, response_time, **_kwargs) -> None:
    if "pacer" in state:
        state["pacer"].count(request_type in ("PATCH", "POST"))
        state["histograms"].add(name, response_time)


@events.quitting.add_listener
def dump_latencies(environment, **_kwargs) -> None:
    prefix = state.get("options") and state["options"].latency_file
    if prefix and state["histograms"].counts:
        state["histograms"].dump(Path(f"{prefix}.{os.getpid()}.json"))


class ShelfUser(FastHttpUser):
    """What every persona shares: its own seeded random stream and the body-check sampler."""

    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        options = state["options"]
        persona = type(self).__name__
        worker = getattr(self.environment.runner, "worker_index", 0)
        index = worker * 100_000 + next(USER_INDEXES.setdefault(persona, itertools.count()))
        self.rng = user_rng(options.seed, persona, index)
        self.sampler = Sampler(self.rng, options.check_every)

    def product_id(self) -> int:
        return state["products"].draw(self.rng)

    def read(self, path: str, name: str, statuses=(200,), body_check=None, headers=None):
        """GET ``path`` and verify it; returns the response (its JSON is parsed only when asked)."""
        check = body_check if body_check and self.sampler.due() else None
        with self.client.get(path, name=name, headers=headers, catch_response=True) as response:
            verify(response, statuses, check)
        return response


class ShopperUser(ShelfUser):
    weight = 7

    def on_start(self) -> None:
        super().on_start()
        self.etags: dict[int, str] = {}

    @task
    def product_detail(self) -> None:
        product_id = self.product_id()
        etag = self.etags.get(product_id)
        if etag and self.rng.random() < state["options"].revalidate_share:
            self.revalidate(product_id, etag)
            return
        response = self.read(f"/v1/products/{product_id}", DETAIL, body_check=has_id(product_id))
        self.remember(product_id, response.headers.get("ETag"))

    def revalidate(self, product_id: int, etag: str) -> None:
        """A conditional read: 304 while unchanged, 200 with a new ETag after a write."""
        path, headers = f"/v1/products/{product_id}", {"If-None-Match": etag}
        response = self.read(path, REVALIDATE, (304, 200), has_id(product_id), headers)
        self.remember(product_id, response.headers.get("ETag"))

    def remember(self, product_id: int, etag: str | None) -> None:
        if etag and (product_id in self.etags or len(self.etags) < ETAGS_KEPT):
            self.etags[product_id] = etag


class BrowserUser(ShelfUser):
    weight = 3

    def on_start(self) -> None:
        super().on_start()
        response = self.read("/v1/categories", TREE, body_check=is_page_of_nodes)
        self.slugs = [node["slug"] for node in walk(json_of(response).get("items", []))]

    @task(5)
    def list_pages(self) -> None:
        params = {"sort": self.rng.choice(SORTS)}
        if self.slugs and self.rng.random() < 0.7:
            params["category"] = self.rng.choice(self.slugs)
        query = "&".join(f"{key}={value}" for key, value in params.items())
        for _ in range(self.rng.randint(1, state["options"].max_pages)):
            response = self.read(f"/v1/products?{query}", LIST, body_check=is_page())
            cursor = json_of(response).get("next_cursor")
            if not cursor:
                return
            query = "&".join(f"{key}={value}" for key, value in {**params, "cursor": cursor}.items())

    @task(2)
    def category(self) -> None:
        if self.slugs:
            slug = self.rng.choice(self.slugs)
            self.read(f"/v1/categories/{slug}", CATEGORY, body_check=has_fields(slug=slug))

    @task(2)
    def reviews(self) -> None:
        product_id = self.product_id()
        self.read(f"/v1/products/{product_id}/reviews", REVIEWS, body_check=is_page(review_of(product_id)))

    @task(1)
    def tree(self) -> None:
        self.read("/v1/categories", TREE, body_check=is_page_of_nodes)


class WriterUser(ShelfUser):
    """Sends writes at ``--write-share`` of this process's requests; idles between them."""

    fixed_count = 1
    wait_time = constant(0.005)

    @task
    def write(self) -> None:
        if not state["pacer"].write_due():
            return
        if self.rng.random() < 0.5:
            self.change_product()
        else:
            self.add_review()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {state['token']}"}

    def change_product(self) -> None:
        product_id = self.product_id()
        if self.rng.random() < 0.5:
            change = {"price": f"{self.rng.randint(100, 99_999) / 100:.2f}"}
        else:
            change = {"stock": self.rng.randint(0, 500)}
        path = f"/v1/products/{product_id}"
        with self.client.patch(
            path, json=change, headers=self.headers(), name=PATCH, catch_response=True
        ) as response:
            verify(response, (200,), has_fields(id=product_id, **change))

    def add_review(self) -> None:
        product_id = self.product_id()
        review = {"rating": self.rng.randint(1, 5), "title": "Load test review", "author": "locust"}
        path = f"/v1/products/{product_id}/reviews"
        with self.client.post(
            path, json=review, headers=self.headers(), name=POST_REVIEW, catch_response=True
        ) as response:
            verify(response, (201,), has_fields(product_id=product_id, rating=review["rating"]))


class FloorUser(ShelfUser):
    """Only ``/healthz``: no database, no cache, the framework's own cost per request."""

    weight = 1

    @task
    def healthz(self) -> None:
        self.read("/healthz", HEALTHZ, body_check=has_fields(status="ok"))


def walk(nodes: list[dict]):
    """Every node of the category tree, parents before their children."""
    for node in nodes:
        yield node
        yield from walk(node.get("children") or [])


def json_of(response) -> dict:
    """The body of a 200 as a dict; empty for anything else (the failure is already recorded)."""
    if response.status_code != 200:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def is_page_of_nodes(body) -> str | None:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list) or not body["items"]:
        return "expected a non-empty {items: [...]} category tree"
    return None
