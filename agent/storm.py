"""An alert storm's shared signal and which of its members the localization covers. Pure.

A storm is many alerts of one rule and group (server/db/storms.py gathers them). It is investigated
once, as one alert whose labels are those every member has (`shared_alert`): the labels in which the
members differ are then not pinned (agent/evidence.py pins a grouping label only to a value the alert
has), so the localization breaks the whole signal down and finds where the change lives. A member is
covered when a root cause's labels agree with the member's on every label both have, and they share one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.models import AlertInfo, RootCause, Storm, StormMember

MAX_LISTED = 200  # members listed in the report (all are counted)


def shared_labels(labels: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """The labels (name and value) every one of `labels` has."""
    if not labels:
        return {}
    out = dict(labels[0])
    for other in labels[1:]:
        out = {k: v for k, v in out.items() if other.get(k) == v}
    return out


def shared_alert(lead: AlertInfo, members: Sequence[Mapping[str, str]]) -> AlertInfo:
    """The alert a storm is investigated as: the lead's, with only the labels all members share."""
    labels = shared_labels([lead.labels, *members])
    labels.setdefault("alertname", lead.name)
    return lead.model_copy(update={"labels": labels})


def covered(labels: Mapping[str, str], causes: Sequence[RootCause]) -> bool | None:
    """Whether a cause holds a member with `labels` (None: no cause shares a label with it)."""
    decided = False
    for cause in causes:
        common = [k for k in cause.labels if k in labels]
        if not common:
            continue
        decided = True
        if all(labels[k] == cause.labels[k] for k in common):
            return True
    return False if decided else None


def summarize(alerts: Sequence[tuple[int, Mapping[str, str]]], causes: Sequence[RootCause]) -> Storm:
    """The storm of `alerts` (incident id, labels; the lead's own included) against the report's root
    causes."""
    shared = shared_labels([labels for _, labels in alerts])
    varying = sorted({k for _, labels in alerts for k in labels} - set(shared))
    rows = [
        StormMember(
            incident_id=incident_id,
            labels={k: labels[k] for k in varying if k in labels},
            covered=covered(labels, causes),
        )
        for incident_id, labels in alerts
    ]
    order = {True: 0, None: 1, False: 2}
    rows.sort(key=lambda m: (order[m.covered], m.incident_id))
    return Storm(
        alerts=len(rows),
        shared=shared,
        varying=varying,
        covered=sum(m.covered is True for m in rows),
        not_covered=sum(m.covered is False for m in rows),
        undetermined=sum(m.covered is None for m in rows),
        members=rows[:MAX_LISTED],
    )
