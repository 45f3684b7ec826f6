"""/docs and /redoc over real HTTP: every file they load comes from the server itself (no CDN), and
each page carries a Content-Security-Policy that allows this origin and its own inline script only."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import ServerEnv, serve

PAGES = ("/docs", "/redoc")
KINDS = {".js": ("application/javascript", "text/javascript"), ".css": ("text/css",), ".png": ("image/png",)}


class _Refs(HTMLParser):
    """Every `src=` and `href=` in a page, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.urls: list[str] = []
        self.inline: list[str] = []
        self._in_inline = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href", "spec-url") and v is not None]
        self._in_inline = tag == "script" and "src" not in found

    def handle_endtag(self, tag: str) -> None:
        self._in_inline = False

    def handle_data(self, data: str) -> None:
        if self._in_inline:
            self.inline.append(data)


def _refs(html: str) -> _Refs:
    parser = _Refs()
    parser.feed(html)
    parser.close()
    return parser


def _directives(policy: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *sources = part.split()
        out[name] = sources
    return out


@pytest.fixture
def docs_server(make_settings: Callable[..., Settings]) -> Iterator[ServerEnv]:
    # Auth configured, as in production: the docs must stay open like /openapi.json.
    env, stop = serve(make_settings(auth_token="s3cret"), start_workers=False)
    yield env
    stop()


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_only_same_origin_assets(docs_server: ServerEnv, page: str) -> None:
    origin = urlsplit(docs_server.url).netloc
    with httpx.Client(base_url=docs_server.url, timeout=10) as c:
        answer = c.get(page)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        html = answer.text
        assert "://" not in html, "an absolute URL is left in the page"
        urls = _refs(html).urls
        assets = [u for u in urls if u != "/openapi.json"]
        assert len(assets) >= 2, urls  # the UI's script (and stylesheet) and the favicon
        for url in urls:
            assert not url.startswith("//"), url
            assert urlsplit(urljoin(docs_server.url + page, url)).netloc == origin, url
        for url in assets:
            asset = c.get(urljoin(page, url))
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"].split(";")[0] in KINDS[suffix], (url, asset.headers)
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert len(asset.content) > (100_000 if suffix in (".js", ".css") else 100), url
        spec = c.get("/openapi.json")
        assert spec.status_code == 200
        assert page not in spec.json()["paths"]


@pytest.mark.parametrize("page", PAGES)
def test_page_has_a_strict_content_security_policy(docs_server: ServerEnv, page: str) -> None:
    answer = httpx.get(docs_server.url + page, timeout=10)
    assert answer.headers["x-content-type-options"] == "nosniff"
    policy = _directives(answer.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    for directive in ("style-src", "img-src", "font-src", "connect-src"):
        assert "'self'" in policy[directive], directive
    for directive, sources in policy.items():
        assert not any(re.match(r"[a-z]+://|\*", s) for s in sources), (directive, sources)
    scripts = policy["script-src"]
    assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    hashes = {
        f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
        for s in _refs(answer.text).inline
    }
    assert set(scripts) == {"'self'", *hashes}  # each inline script allowed by its hash, nothing else
    assert bool(hashes) == (page == "/docs")  # Swagger UI's initialiser; Redoc has none


def test_oauth2_redirect_page_is_served_with_its_script_hash(docs_server: ServerEnv) -> None:
    answer = httpx.get(docs_server.url + "/docs/oauth2-redirect", timeout=10)
    assert answer.status_code == 200
    (script,) = _refs(answer.text).inline
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in answer.headers["content-security-policy"]


def test_pages_follow_root_path(make_settings: Callable[..., Settings]) -> None:
    """Behind a proxy that strips a prefix, every URL in the pages carries it."""
    with TestClient(create_app(make_settings(), start_workers=False), root_path="/sleuth") as c:
        for page in PAGES:
            urls = _refs(c.get(page).text).urls
            assert urls and all(u.startswith("/sleuth/") for u in urls), urls
            for url in urls:  # as the proxy passes them on, prefix and all (the ASGI `path` keeps it)
                assert c.get(url).status_code == 200, url
