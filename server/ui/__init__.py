"""The web UI: server-rendered pages of incidents and their reports (`routes.py`), its session cookie
and CSRF tokens (`session.py`), what the pages read from the store (`views.py`), jinja2 templates and
one stylesheet."""

from server.ui.routes import install

__all__ = ["install"]
