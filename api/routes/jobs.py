"""/v1/jobs/{id}: follow a background job started by a trigger."""

from __future__ import annotations

from flask.views import MethodView

from jobs.status import job_status

from .. import background, schemas
from ..openapi import Blueprint

blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Background jobs.")


@blp.route("/<string(maxlength=64):job_id>")
class JobById(MethodView):
    @blp.response(200, schemas.JobSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, job_id):
        """A job's status, times, progress, result or error, and retries used."""
        return job_status(background.connection(), job_id)
