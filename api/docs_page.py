"""Swagger UI's files for ``/docs``, served by the app from the pinned ``swagger-ui-bundle`` package.

flask-smorest's page loads Swagger UI from ``OPENAPI_SWAGGER_UI_URL``; pointing it at a CDN left
``/docs`` blank offline and the version unpinned. The files come instead from the wheel installed with
requirements.txt and are served under ``/docs/assets/`` with a day of browser caching (the version is
pinned, so a file under one name never changes within a release).
"""

from __future__ import annotations

from flask import Blueprint, Flask
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs/assets/"
"""Where the page loads ``swagger-ui-bundle.js`` and friends from (``OPENAPI_SWAGGER_UI_URL``)."""

ASSETS_MAX_AGE_SECONDS = 24 * 3600


class AssetsBlueprint(Blueprint):
    def get_send_file_max_age(self, filename: str | None) -> int:
        return ASSETS_MAX_AGE_SECONDS


def init_app(app: Flask) -> None:
    app.register_blueprint(
        AssetsBlueprint(
            "docs_assets", __name__, static_folder=swagger_ui_path, static_url_path=ASSETS_URL.rstrip("/")
        )
    )
