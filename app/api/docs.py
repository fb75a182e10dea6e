"""The interactive API docs at ``/api/v1/docs``: Swagger UI served by the app itself, so it works with no internet.

The assets come from the ``swagger-ui-bundle`` package (pinned in requirements.txt); nothing is loaded from a CDN,
and the page has no inline script, so its Content-Security-Policy (app/security.py) allows scripts from this
origin only. The page and its assets are not rate-limited and not in the API document.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from app.extensions import limiter

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1/docs")
ASSETS = str(swagger_ui_path)

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Thusa API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{spec}"></div>
  <script src="{bundle}"></script>
  <script src="{init}"></script>
</body>
</html>
"""

# No validator badge: Swagger UI would send the document to validator.swagger.io.
_INIT = """window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false
  });
});
"""


@bp.get("")
@limiter.exempt
def page() -> Response:
    """The Swagger UI page for ``/api/v1/openapi.json``."""
    html = _PAGE.format(
        css=url_for(".asset", filename="swagger-ui.css"),
        icon=url_for(".asset", filename="favicon-32x32.png"),
        bundle=url_for(".asset", filename="swagger-ui-bundle.js"),
        init=url_for(".init"),
        spec=url_for("api-docs.openapi_json"),
    )
    return Response(html, mimetype="text/html")


@bp.get("/init.js")
@limiter.exempt
def init() -> Response:
    return Response(_INIT, mimetype="text/javascript")


@bp.get("/assets/<path:filename>")
@limiter.exempt
def asset(filename: str) -> Response:
    """A file of the Swagger UI distribution (``send_from_directory`` refuses paths that leave it)."""
    return send_from_directory(ASSETS, filename)
