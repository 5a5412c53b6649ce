"""/v1/categories: the two-level tree, one category with its stats, and category writes."""

from __future__ import annotations

import re

from flask import url_for
from flask.views import MethodView

from catalog import schemas
from catalog.representations import CATEGORY, CATEGORY_TREE, Rendered, render
from catalog.services import categories as service

from .. import caching, db
from ..errors import problem
from ..guards.auth import require_token
from ..http import check_if_match, no_content, send
from ..openapi import WRITE, Blueprint

blp = Blueprint("categories", __name__, url_prefix="/v1/categories", description="The category tree.")


def render_category(slug: str):
    return render(CATEGORY, service.category_detail(db.session(), slug))


@blp.route("")
class Categories(MethodView):
    @blp.response(200, schemas.CategoryTreeSchema)
    def get(self):
        """The category tree, each node with its subtree's product count."""

        def tree() -> Rendered:
            return render(CATEGORY_TREE, {"items": service.category_tree(db.session())})

        return caching.serve(caching.keys().category_tree(), tree)

    @require_token
    @blp.arguments(schemas.CategoryCreateSchema)
    @blp.response(201, schemas.CategorySchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(**WRITE)
    def post(self, data):
        """Create a category, top-level or under a top-level parent."""
        session = db.session()
        category = service.create_category(session, data)
        session.commit()
        location = url_for("categories.CategoriesBySlug", slug=category.slug)
        return send(render_category(category.slug), 201, {"Location": location})


@blp.route("/<string(maxlength=80):slug>")
class CategoriesBySlug(MethodView):
    @blp.response(200, schemas.CategorySchema)
    @blp.alt_response(304, description="Not Modified")
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, slug):
        """One category with its parent, children and subtree stats."""
        if not re.fullmatch(schemas.SLUG, slug):
            raise problem(404, f"category {slug!r} not found")
        return caching.serve(caching.keys().category(slug), lambda: render_category(slug))

    @require_token
    @blp.arguments(schemas.CategoryUpdateSchema)
    @blp.response(200, schemas.CategorySchema)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(**WRITE)
    def patch(self, changes, slug):
        """Rename, re-slug or move a category."""
        session = db.session()
        check_if_match(render_category(slug))
        category = service.update_category(session, service.get_category_by_slug(session, slug), changes)
        session.commit()
        return send(render_category(category.slug))

    @require_token
    @blp.response(204)
    @blp.alt_response(401, response="UNAUTHORIZED")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT")
    @blp.alt_response(412, response="PRECONDITION_FAILED")
    @blp.doc(**WRITE)
    def delete(self, slug):
        """Delete an empty category (no products, no subcategories)."""
        session = db.session()
        check_if_match(render_category(slug))
        service.delete_category(session, service.get_category_by_slug(session, slug))
        session.commit()
        return no_content()
