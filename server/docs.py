"""`/docs` (Swagger UI) and `/redoc`, served from files shipped in the package so they work offline.

FastAPI's own pages load Swagger UI and Redoc from a CDN (jsdelivr) and a favicon from
fastapi.tiangolo.com, so they are blank on a machine without internet. `create_app` turns them off
(`docs_url=None, redoc_url=None`) and calls `install_docs`, which builds the same pages with FastAPI's
helpers but points them at `server/static/docs/` (swagger-ui-dist 5, redoc 2: versions, licences
and checksums in its README.md), mounted at `/docs-static`.

Like `/openapi.json`, these pages need no credentials. Each answers with a Content-Security-Policy
that lets it load scripts, styles, images and data from this origin only: no page can reach another
host, even if a spec's text were to smuggle markup in. Scripts are `'self'` plus the SHA-256 of the
page's own inline `<script>` (the Swagger UI initialiser, hashed as rendered, so `root_path` and
`swagger_ui_parameters` are covered): no `'unsafe-inline'` for scripts. Styles need
`'unsafe-inline'`: both pages carry inline styles and Redoc injects `<style>` elements at run time.
The one remote load left in the assets, the Redocly logo in Redoc's footer (cdn.redoc.ly), is blocked
by the policy and just not shown (offline it could not load anyway).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

ASSETS = Path(__file__).resolve().parent / "static" / "docs"
STATIC_URL = "/docs-static"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"

SWAGGER_JS = "swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui/swagger-ui.css"
REDOC_JS = "redoc/redoc.standalone.js"
FAVICON = "swagger-ui/favicon-32x32.png"

# An inline script as FastAPI's helpers write it: a bare `<script>` tag (external ones carry `src=`).
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

_POLICY = (
    "default-src 'none'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",  # the UIs' icons are data: URIs; Swagger UI shows image answers as blob:
    "font-src 'self' data:",
    "connect-src 'self'",  # /openapi.json, and Swagger UI's "Try it out" against this server
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
)


def content_security_policy(html: str, *, workers: bool = False) -> str:
    """The policy for `html`: scripts from this origin and the page's own inline scripts, by hash."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html)
    ]
    parts = [*_POLICY, " ".join(["script-src 'self'", *hashes])]
    if workers:
        parts.append("worker-src blob:")  # Redoc runs its search index in a worker built from a blob
    return "; ".join(parts)


def _secured(page: HTMLResponse, *, workers: bool = False) -> HTMLResponse:
    html = bytes(page.body).decode()
    page.headers["Content-Security-Policy"] = content_security_policy(html, workers=workers)
    page.headers["X-Content-Type-Options"] = "nosniff"
    page.headers["Referrer-Policy"] = "no-referrer"
    return page


class _Assets(StaticFiles):
    """The vendored files, revalidated on each load (ETag) so an upgrade shows at once, never sniffed."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def install_docs(app: FastAPI) -> None:
    """Mount the assets at `/docs-static` and add `/docs`, its OAuth2 redirect page and `/redoc`."""
    openapi_path = app.openapi_url
    if not openapi_path:
        return
    app.mount(STATIC_URL, _Assets(directory=ASSETS), name="docs-static")
    redirect_path = app.swagger_ui_oauth2_redirect_url

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        static = base + STATIC_URL
        page = get_swagger_ui_html(
            openapi_url=base + openapi_path,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{static}/{SWAGGER_JS}",
            swagger_css_url=f"{static}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{static}/{FAVICON}",
            oauth2_redirect_url=base + redirect_path if redirect_path else None,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        return _secured(page)

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return _secured(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        static = base + STATIC_URL
        page = get_redoc_html(
            openapi_url=base + openapi_path,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{static}/{REDOC_JS}",
            redoc_favicon_url=f"{static}/{FAVICON}",
            with_google_fonts=False,
        )
        return _secured(page, workers=True)

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    if redirect_path:
        app.add_route(redirect_path, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
