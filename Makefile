# alertsleuth: `make demo` runs the whole flow for real, `make test` runs the test suite.
# Both install what they need: uv (from PyPI) when missing, Debian's prometheus and
# prometheus-alertmanager packages when those binaries are not on PATH (or named by PROMETHEUS_BIN,
# PROMTOOL_BIN, ALERTMANAGER_BIN), Debian's redmine and redmine-sqlite (or REDMINE_ROOT), and a CJK
# font for the charts (fonts-wqy-microhei), Debian's chromium and chromium-driver for the UI's
# browser tests, and Debian's postgresql for the store's PostgreSQL tests when initdb and pg_ctl are
# found neither in POSTGRES_BIN_DIR, nor on PATH, nor in /usr/lib/postgresql/<version>/bin.

SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 && [ "$$(id -u)" != 0 ] && echo sudo)
PYTEST_ARGS ?=
# Two pytest-xdist workers, a test file each at a time (its module fixtures stay on one worker): the
# suite mostly waits on real servers, so it takes about two thirds of the serial time. `PYTEST_XDIST=`:
# serial.
PYTEST_XDIST ?= -n 2 --dist loadfile

.PHONY: help deps uv binaries wrk redmine fonts browser postgres sync demo test lint typecheck check bench serve exporter clean

help:
	@echo "make demo   - run Prometheus, Alertmanager, the exporter, Redmine and alertsleuth; inject a fault;"
	@echo "              print the report; follow the ticket from opened to updated to closed"
	@echo "make test   - install what is missing and run the test suite"
	@echo "make check  - lint (ruff) and type-check (mypy)"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make serve  - run the server with the settings from the environment / .env"

deps: uv binaries redmine fonts browser postgres sync

# CJK fonts for the charts' Chinese labels: Debian's WenQuanYi Micro Hei (small), when no CJK font is there.
fonts:
	@if fc-list 2>/dev/null | grep -qiE 'wenquanyi|noto (sans|serif) cjk|droid sans fallback'; then :; else \
	  echo "installing Debian's fonts-wqy-microhei"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends fontconfig fonts-wqy-microhei >/dev/null; fi

# Headless Chromium and its WebDriver for the UI's browser tests (tests/server/test_ui_browser.py).
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; else \
	  echo "installing Debian's chromium and chromium-driver"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver >/dev/null; fi

# Redmine 5 for the ticket tests and the demo: Debian's packages, SQLite, no questions asked.
redmine:
	@if [ -n "$${REDMINE_ROOT:-}" ] || [ -f /usr/share/redmine/config/application.rb ]; then :; else \
	  echo "installing Debian's redmine and redmine-sqlite"; \
	  printf '%s\n' \
	    'redmine redmine/instances/default/dbconfig-install boolean true' \
	    'redmine redmine/instances/default/database-type select sqlite3' \
	    | $(SUDO) debconf-set-selections && \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends redmine redmine-sqlite >/dev/null; fi

# PostgreSQL for the store's tests (each session runs a private cluster: tests/postgres.py): Debian's
# postgresql, whose initdb and pg_ctl live in /usr/lib/postgresql/<version>/bin, not on PATH.
postgres:
	@found() { [ -x "$$1/initdb" ] && [ -x "$$1/pg_ctl" ]; }; have=; \
	if [ -n "$${POSTGRES_BIN_DIR:-}" ] && found "$$POSTGRES_BIN_DIR"; then have=1; \
	elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then have=1; \
	else for d in /usr/lib/postgresql/*/bin; do found "$$d" && have=1; done; fi; \
	if [ -z "$$have" ]; then \
	  echo "installing Debian's postgresql"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends postgresql >/dev/null; fi

uv:
	@command -v uv >/dev/null 2>&1 || { \
	  echo "installing uv from PyPI"; \
	  python3 -m pip --version >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends python3-pip; }; \
	  python3 -m pip install --quiet --user uv 2>/dev/null || \
	  python3 -m pip install --quiet --user --break-system-packages uv; }

binaries:
	@have() { [ -n "$${!1:-}" ] && [ -x "$${!1}" ] && return 0; shift; for b in "$$@"; do command -v $$b >/dev/null 2>&1 && return 0; done; return 1; }; \
	if have PROMETHEUS_BIN prometheus && have PROMTOOL_BIN promtool && have ALERTMANAGER_BIN prometheus-alertmanager alertmanager; then :; else \
	  echo "installing Debian's prometheus and prometheus-alertmanager"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-alertmanager >/dev/null; fi; \
	if have VICTORIA_METRICS_BIN victoria-metrics victoria-metrics-prod; then :; else \
	  echo "installing Debian's victoria-metrics (the second query backend of the e2e tests)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends victoria-metrics >/dev/null; fi

# wrk, the load generator of bench/intake.py.
wrk:
	@command -v wrk >/dev/null 2>&1 || { echo "installing Debian's wrk"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends wrk >/dev/null; }

sync: uv
	@uv sync --frozen --quiet

demo: deps
	uv run alertsleuth-demo --redmine

test: deps
	uv run pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: sync
	uv run ruff check .
	uv run ruff format --check .

typecheck: sync
	uv run mypy

check: lint typecheck

bench: deps
	uv run python bench/ingest.py

serve: sync
	uv run alertsleuth serve

exporter: sync
	uv run alertsleuth-exporter

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache alert_reports alertsleuth.db*
