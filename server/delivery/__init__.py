"""Delivery of reports to tickets and chat: routing, the outbox, and one adapter per platform."""
