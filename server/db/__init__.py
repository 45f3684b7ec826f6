"""Persistence through SQLAlchemy, on SQLite or PostgreSQL: the tables (`models`), their migrations
(`migrate`, `migrations/`) and one module per job; `Store` holds them."""

from server.db.deliveries import ClaimedDelivery, NewDelivery, Plan, Told
from server.db.intake import IngestResult
from server.db.jobs import ClaimedJob, FailedJob, LeaseLost
from server.db.models import (
    AskMessage,
    AskSession,
    Delivery,
    Incident,
    Job,
    Notification,
    ReportRow,
    Ticket,
)
from server.db.store import Store

__all__ = [
    "AskMessage",
    "AskSession",
    "ClaimedDelivery",
    "ClaimedJob",
    "Delivery",
    "FailedJob",
    "Incident",
    "IngestResult",
    "LeaseLost",
    "Job",
    "NewDelivery",
    "Notification",
    "Plan",
    "ReportRow",
    "Store",
    "Ticket",
    "Told",
]
