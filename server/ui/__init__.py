"""The web UI: server-rendered pages of incidents and their reports (`routes.py`), questions (`ask.py`),
the delivery settings (`settings.py`), silences and runbook actions (`chatops.py`), its session cookie and
CSRF tokens (`session.py`), what the pages read from the store (`views.py`), jinja2 templates, one
stylesheet and one script (`static/ask.js`)."""

from fastapi import FastAPI

from server.ui import ask, chatops, routes, settings


def install(app: FastAPI) -> None:
    """Add every page of the UI and its static files to the app."""
    routes.install(app, ask.router, settings.router, chatops.router)


__all__ = ["install"]
