"""/v1/admin/cache: what the cache is doing, and purging it. Token required."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView

from jobs.status import job_status

from .. import background, caching, db, schemas
from ..guards.auth import require_token
from ..openapi import WRITE, Blueprint

blp = Blueprint("admin", __name__, url_prefix="/v1/admin", description="Operating the cache.")


@blp.route("/cache/stats")
class CacheStats(MethodView):
    @require_token
    @blp.response(200, schemas.CacheStatsSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.doc(**WRITE)
    def get(self):
        """Cache counters per resource (all worker processes), breaker state and pending invalidations."""
        return caching.stats()


@blp.route("/cache/purge")
class CachePurge(MethodView):
    @require_token
    @blp.arguments(schemas.CachePurgeSchema)
    @blp.response(200, schemas.CachePurgedSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.doc(**WRITE)
    def post(self, data):
        """Delete cached entries: one resource's, or every entry under the key prefix."""
        return {"deleted": caching.region().purge(data["resource"])}


def accepted(job) -> tuple[dict, int, dict]:
    location = url_for("jobs.JobById", job_id=job.id)
    return job_status(background.connection(), job.id), 202, {"Location": location}


@blp.route("/cache/warm")
class CacheWarm(MethodView):
    @require_token
    @blp.arguments(schemas.WarmRequestSchema)
    @blp.response(202, schemas.JobSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.doc(**WRITE)
    def post(self, data):
        """Queue a warm job (scope popular, category, ids or all); follow it at the Location given."""
        job = background.trigger_warm(
            db.session(), data["scope"], data["limit"], data["category"], data["ids"]
        )
        return accepted(job)


@blp.route("/aggregates/recompute")
class AggregatesRecompute(MethodView):
    @require_token
    @blp.arguments(schemas.RecomputeRequestSchema)
    @blp.response(202, schemas.JobSchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.doc(**WRITE)
    def post(self, data):
        """Queue a recompute of rating summaries and category stats (scope all, product or category)."""
        job = background.trigger_recompute(db.session(), data["scope"], data["product_id"], data["category"])
        return accepted(job)
