"""/v1/admin/cache: what the cache is doing, and purging it. Token required."""

from __future__ import annotations

from flask.views import MethodView

from .. import caching, schemas
from ..auth import require_token
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
