"""The store: the database and its operations, one attribute per job.

store.intake        notifications in, deduplicated into incidents (and resolved notices queued)
store.jobs          the investigation queue (claim, retry, fail, requeue; complete with the report)
store.deliveries    the outbox (ordering, claim, how each delivery ended, retry)
store.reports       stored reports and the incidents' tickets
store.incidents     incident reads for the API
store.ask_sessions  `ask` conversations
store.history       incidents seen before (agent.history.History) and the full-text search of reports
store.chatops       chat threads of incidents, silences made, and the append-only audit trail
store.actions       runbook actions: dry run, approval, run
"""

from __future__ import annotations

from server.db.actions import Actions
from server.db.ask_sessions import AskSessions
from server.db.chatops import ChatOps
from server.db.database import Database
from server.db.deliveries import Deliveries
from server.db.history import History
from server.db.incidents import Incidents
from server.db.intake import Intake
from server.db.jobs import JobQueue
from server.db.reports import Reports


class Store(Database):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.intake = Intake(self)
        self.jobs = JobQueue(self)
        self.deliveries = Deliveries(self)
        self.reports = Reports(self)
        self.incidents = Incidents(self)
        self.ask_sessions = AskSessions(self)
        self.history = History(self)
        self.chatops = ChatOps(self)
        self.actions = Actions(self)
