"""Alert storms: many alerts of one rule and one group, investigated once.

Every incident gets a storm key when intake makes it (`storm_key`: its alert's name, the rule's
expression, and the Alertmanager group it came in). When a worker claims the investigation of an
incident and at least `StormRule.min_alerts` incidents with its key, started within `window` seconds of
it, wait in the queue, it becomes the storm's lead: the others' jobs are attached to its job (state
`attached`, `lead_job_id`), and it investigates the signal they share (the labels all of them have:
agent/storm.py). An incident of the storm claimed later, while the lead is investigating or after it
reported, is attached to it too instead of being investigated again. The members' investigation follows
the lead's (running, done, failed, queued again), and when the lead's report is stored every member gets
it (`mirror`). The report says which members its localization covers (`Report.storm`).

An incident of a storm is marked with its lead (`storm_lead_id`; the lead with its own id). On
PostgreSQL an advisory lock per storm key orders the claims of a storm's incidents, so two workers do
not both become its lead; on SQLite the write lock does.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agent.models import AlertInfo
from agent.plan import expression_from_generator_url
from server.db.database import serialize
from server.db.models import Incident, Job

STORM_LOCKS = 0x7374  # `serialize`'s scope for storm keys ("st")
MAX_MEMBERS = 20_000  # attached to one lead at most (one notification may hold 7,000 alerts)


@dataclass(frozen=True)
class StormRule:
    """`min_alerts` incidents of one key (the claimed one included) waiting make a storm (0: never);
    `window`: how far apart their startsAt may be."""

    min_alerts: int = 10
    window: float = 600.0


@functools.lru_cache(maxsize=1024)  # a rule's alerts share its URL: parsed once, not per alert
def _rule_of(generator_url: str | None) -> str | None:
    return expression_from_generator_url(generator_url)


def storm_key(alert: AlertInfo, group_key: str) -> str:
    """The key of the alerts investigated together: one rule (name and expression) in one group."""
    rule = _rule_of(alert.generator_url) or ""
    text = "\x1f".join((alert.name, rule, group_key))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass
class Joined:
    """A claimed job that joined a storm's lead instead of running: the lead's job and incident."""

    lead_job_id: int
    lead_incident_id: int


def join_lead(s: Session, job: Job, inc: Incident, rule: StormRule) -> Joined | None:
    """When `inc` belongs to a storm whose lead is investigating or has reported, attach `job` to the
    lead (mirroring its state and report) and say so; else None."""
    if rule.min_alerts <= 0 or not inc.storm_key or inc.report_id is not None:
        return None  # (an incident re-investigated, after it had a report, is investigated alone)
    serialize(s, STORM_LOCKS, [inc.storm_key])
    if members_of(s, job.id):  # a lead queued again (a retry): it keeps its members and leads
        return None
    span = timedelta(seconds=rule.window)
    lead = s.scalars(
        select(Incident)
        .where(
            Incident.storm_key == inc.storm_key,
            Incident.storm_lead_id == Incident.id,
            Incident.id != inc.id,
            Incident.starts_at.between(inc.starts_at - span, inc.starts_at + span),
        )
        .order_by(Incident.id.desc())
        .limit(1)
    ).first()
    if lead is None:
        return None
    lead_job = s.scalars(
        select(Job)
        .where(Job.incident_id == lead.id, Job.lead_job_id.is_(None))
        .order_by(Job.id.desc())
        .limit(1)
    ).first()
    if lead_job is None:
        return None
    job.lead_job_id = lead_job.id
    job.lease_until = None
    job.worker = None
    inc.storm_lead_id = lead.id
    mirror_one(job, inc, lead_job, lead)
    return Joined(lead_job.id, lead.id)


def gather(s: Session, job: Job, inc: Incident, rule: StormRule) -> list[Incident]:
    """When enough incidents of `inc`'s storm wait in the queue, attach their jobs to `job` and return
    them (the members, the lead excluded: those attached before, on an earlier attempt, included);
    else []."""
    if rule.min_alerts <= 0 or not inc.storm_key:
        return []
    serialize(s, STORM_LOCKS, [inc.storm_key])  # (taken again in one transaction: it holds already)
    earlier = members_of(s, job.id)
    span = timedelta(seconds=rule.window)
    # The storm's incidents first, by their storm_key index, then their jobs: joined in one query,
    # SQLite (no statistics) walked every queued job instead, in order, looking each incident up (14 ms
    # a claim at 42,000 queued; 0.2 ms so). MATERIALIZED keeps both backends from folding it back.
    storm = (
        select(Incident.id)
        .where(
            Incident.storm_key == inc.storm_key,
            Incident.id != inc.id,
            Incident.status == "firing",
            Incident.starts_at.between(inc.starts_at - span, inc.starts_at + span),
        )
        .cte("storm")
        .prefix_with("MATERIALIZED")
    )
    waiting = s.execute(
        select(Job, Incident)
        .join(storm, storm.c.id == Job.incident_id)
        .join(Incident, Incident.id == Job.incident_id)
        .where(Job.state == "queued", Job.lead_job_id.is_(None))
        .order_by(Job.id)
        .limit(MAX_MEMBERS)
    ).all()
    if not earlier and len(waiting) + 1 < rule.min_alerts:
        return []
    inc.storm_lead_id = inc.id
    for member_job, member in waiting:
        member_job.state = "attached"
        member_job.lead_job_id = job.id
        member.storm_lead_id = inc.id
        member.investigation = "running"
    return earlier + [member for _, member in waiting]


def members_of(s: Session, lead_job_id: int) -> list[Incident]:
    """The incidents whose jobs are attached to the lead's job."""
    return list(
        s.scalars(
            select(Incident)
            .join(Job, Job.incident_id == Incident.id)
            .where(Job.lead_job_id == lead_job_id)
            .order_by(Incident.id)
        )
    )


def member_state(lead_job: Job) -> str:
    """A member's job while its lead's is queued or running (attached), else the lead's end."""
    return "attached" if lead_job.state in ("queued", "running") else lead_job.state


def mirror(s: Session, lead_job: Job, lead: Incident) -> None:
    """The lead's job ended an attempt (or reported): its members follow, in the same transaction."""
    s.execute(
        update(Job)
        .where(Job.lead_job_id == lead_job.id)
        .values(state=member_state(lead_job))
        .execution_options(synchronize_session=False)
    )
    s.execute(
        update(Incident)
        .where(Incident.id.in_(select(Job.incident_id).where(Job.lead_job_id == lead_job.id)))
        .values(
            investigation=lead.investigation,
            report_id=lead.report_id,
            error=lead.error,
            storm_lead_id=lead.id,
        )
        .execution_options(synchronize_session=False)
    )


def mirror_one(job: Job, inc: Incident, lead_job: Job, lead: Incident) -> None:
    """A member joining late takes the lead's state and report now."""
    job.state = member_state(lead_job)
    inc.investigation = lead.investigation
    inc.report_id = lead.report_id
    inc.error = lead.error
