"""The offline report writer: the same Report an LLM would write, from the findings alone.

Every figure it writes comes from the findings' evidence; the phrases live in text/offline.yaml.
"""

from __future__ import annotations

from typing import Any

from agent.findings import Findings, new_report_id
from agent.models import Report, RootCause
from agent.related_text import section_lines
from agent.texts import phrases
from tools import promql
from tools.analysis import Candidate
from tools.format import fmt_duration, fmt_labels, fmt_num, fmt_pct, fmt_time

HINT_WORDS = {  # metric-name fragments -> hint key
    "login": "login",
    "auth": "auth",
    "error": "error",
    "fail": "error",
    "5xx": "error",
    "status": "error",
    "latency": "latency",
    "duration": "latency",
    "bucket": "latency",
    "cpu": "cpu",
    "memory": "memory",
    "mem": "memory",
}


# A baseline with data for less of its window than this share gives a low-confidence report.
THIN_BASELINE = 0.5

# The prose quotes figures exactly as the rendered tables show them.
fmt_value = fmt_num
fmt_share = fmt_pct


def label_text(labels: dict[str, str] | tuple[tuple[str, str], ...]) -> str:
    return fmt_labels(labels if isinstance(labels, dict) else dict(labels))


def change_text(before: float | None, after: float | None, from_zero: str) -> str:
    """'+1234%' style relative change, or `from_zero` when there was (almost) nothing before."""
    if before is None or after is None:
        return fmt_num(None)
    if abs(before) < 1e-9 or abs(after - before) / abs(before) > 100:
        return from_zero
    sign = "+" if after >= before else "-"
    return sign + fmt_pct(abs(after - before) / abs(before))


class OfflineWriter:
    """Writes a Report from Findings with fixed phrases in the findings' language."""

    def write(self, f: Findings) -> Report:
        t = phrases("offline", f.language)
        alert = f.alert
        report = Report(
            id=new_report_id(),
            alert=alert,
            expression=f.expression,
            windows=f.windows,
            threshold=f.condition.threshold if f.condition else None,
            comparison=f.condition.op if f.condition and f.condition.threshold is not None else None,
            summary="",
            evidence=f.evidence,
            notes=list(dict.fromkeys(f.notes)),
            degraded=f.degraded,
            data_coverage=dict(f.data_seconds),
            language=f.language if f.language in ("en", "zh") else "en",
            timings=dict(f.timings),
        )
        signal_ev = next((e for e in f.evidence if e.id == f.signal_evidence), None)
        skipped: dict[str, str] = t["skipped"]  # why the localization did not run
        if f.unavailable:
            report.summary = t["unavailable"].format(alert=alert.name, status=alert.status)
            report.localization_note = skipped["unavailable"]
            report.impact = t["impact_unknown"]
            detail = f.notes[-1] if f.notes else "unreachable"
            report.remediation = [t["remediation_unavailable"].format(detail=detail)]
            return report
        if f.expression is None or f.condition is None:
            why = "no_expression" if f.expression is None else "unsupported"
            report.summary = t[why].format(alert=alert.name, status=alert.status)
            report.localization_note = skipped[why]
            report.impact = t["impact_unknown"]
            report.remediation = [t["remediation_generic"].format(alert=alert.name)]
            return report
        if signal_ev is None or not signal_ev.stats or signal_ev.stats[0].incident is None:
            why = "signal_failed" if signal_ev is not None and signal_ev.error else "no_data"
            report.summary = t[why].format(alert=alert.name, status=alert.status)
            report.localization_note = skipped[why]
            report.impact = t["impact_unknown"]
            report.remediation = [t["remediation_generic"].format(alert=alert.name)]
            return report

        signal = f.condition.signal.promql()
        top = signal_ev.stats[0]
        base, inc = top.baseline, top.incident
        loc = f.localization
        threshold = ""
        if f.condition.threshold is not None:
            threshold = t["threshold"].format(op=f.condition.op, value=fmt_value(f.condition.threshold))
        key = "summary_resolved" if alert.status == "resolved" else "summary_firing"
        summary = t[key].format(
            alert=alert.name,
            signal=f"`{signal}`",
            base=fmt_value(base),
            inc=fmt_value(inc),
            threshold=threshold,
        )

        thin = self._thin_baseline(f, t)
        report.confidence = "low" if thin else "normal"
        if thin:
            report.notes.append(thin["note"])
        causes = loc.causes if (loc is not None and loc.localized) else []
        report.localized = bool(causes)
        for cand in causes:
            cause = self._cause(f, cand, t)
            if thin:  # the figures stand; how far to trust them is said with them
                cause.statement += thin["cause"]
            report.root_causes.append(cause)
        if causes:
            first = report.root_causes[0]
            ev = ", ".join(first.evidence_ids)
            if len(causes) == 1:
                summary += t["localized_one"].format(
                    labels=label_text(first.labels),
                    e_base=fmt_value(first.baseline),
                    e_inc=fmt_value(first.incident),
                    share=fmt_share(first.explained_share),
                    ev=ev,
                )
            else:
                summary += t["localized_many"].format(
                    count=len(causes),
                    labels=label_text(first.labels),
                    share=fmt_share(first.explained_share),
                    ev=ev,
                )
            report.impact = t["impact_localized"].format(
                signal=f"`{signal}`",
                inc=fmt_value(inc),
                base=fmt_value(base),
                labels=label_text(first.labels),
                volume=fmt_share(causes[0].volume_share),
            )
        else:
            if f.localization is not None:
                summary += t["not_localized"].format(labels=", ".join(f.labels))
            elif not f.labels:
                summary += t["not_localized_nolabels"]
                report.localization_note = skipped["no_labels"]
            elif f.shape is not None:
                ev = ", ".join(f.label_evidence.values())
                summary += t["no_localization"].format(shape=f.shape.kind, ev=ev)
            if f.localization is None and report.localization_note is None:
                # The finest breakdown ran and failed, or never ran: the shape cannot be localized.
                failed = any(e.error for e in f.evidence if e.id in f.leaf_evidence)
                report.localization_note = skipped["failed" if failed else "shape"]
            report.impact = t["impact_spread"].format(
                signal=f"`{signal}`", inc=fmt_value(inc), base=fmt_value(base)
            )
        report.history = f.history
        report.runbooks = [r.model_copy() for r in f.runbooks]
        summary += self._seen_before(f, t)
        report.summary = summary
        report.related = self._related(f)
        report.remediation = self._remediation(f, report, t)
        report.prevention = self._prevention(f, report, t)
        return report

    def _seen_before(self, f: Findings, t: dict[str, Any]) -> str:
        """One sentence on the incidents seen before (none when no history was asked)."""
        h = f.history
        if h is None:
            return ""

        def times(n: int) -> str:
            return str(t["times"]["one" if n == 1 else "many"]).format(n=n)

        same = next((p for p in h.similar if p.match == "same_cause"), None)
        if same is not None and h.same_cause_30_days:
            when = fmt_time(same.starts_at)
            if same.duration_seconds is None:
                return str(t["seen_same_open"].format(n=times(h.same_cause_30_days), when=when))
            lasted = fmt_duration(same.duration_seconds)
            return str(t["seen_same"].format(n=times(h.same_cause_30_days), when=when, lasted=lasted))
        if h.similar and h.last_30_days:
            top = h.similar[0]
            labels = fmt_labels(top.root_causes[0], plain=True) if top.root_causes else "–"
            return str(
                t["seen_alert"].format(n=times(h.last_30_days), when=fmt_time(top.starts_at), labels=labels)
            )
        if h.first_seen is None and not h.similar:
            return str(t["seen_none"])
        return ""

    def _thin_baseline(self, f: Findings, t: dict[str, Any]) -> dict[str, str] | None:
        """The note and the root-cause remark when the baseline had data for less than half of its
        window (THIN_BASELINE), else None."""
        if f.windows is None or "baseline" not in f.data_seconds:
            return None
        window, covered = f.windows.baseline.seconds, f.data_seconds["baseline"]
        if window <= 0 or covered >= THIN_BASELINE * window:
            return None
        args = {
            "window": fmt_duration(window),
            "covered": fmt_duration(covered),
            "share": fmt_share(covered / window),
        }
        return {
            "note": t["thin_baseline_note"].format(**args),
            "cause": t["thin_baseline_cause"].format(**args),
        }

    def _cause(self, f: Findings, cand: Candidate, t: dict[str, Any]) -> RootCause:
        labels = dict(cand.labels)
        focused = f.cause_evidence.get(cand.labels)
        ev_ids = ([focused] if focused else []) + [
            f.label_evidence[n] for n in labels if n in f.label_evidence
        ]
        ev_ids = list(dict.fromkeys(ev_ids + f.leaf_evidence))
        # The figures quoted come from the focused query when it ran, else from the localization's sums.
        ev = next((e for e in f.evidence if e.id == focused and e.stats), None)
        e_base, e_inc = (ev.stats[0].baseline, ev.stats[0].incident) if ev else (cand.baseline, cand.incident)
        measure = t["measure_ratio"] if (f.localization and f.localization.ratio) else t["measure_sum"]
        statement = t["cause"].format(
            labels=label_text(labels),
            measure=measure,
            e_base=fmt_value(e_base),
            e_inc=fmt_value(e_inc),
            dev=change_text(e_base, e_inc, t["from_zero"]),
            share=fmt_share(cand.explained_share),
            ev=", ".join(ev_ids),
        )
        mostly: dict[str, str] = {}
        if (detail := f.cause_detail.get(cand.labels)) is not None:
            mostly, part, detail_ev = detail
            statement += t["cause_mostly"].format(
                labels=label_text(mostly), share=fmt_share(part), ev=detail_ev
            )
            ev_ids.append(detail_ev)
        return RootCause(
            labels=labels,
            mostly=mostly,
            score=round(cand.score, 4),
            statement=statement,
            evidence_ids=ev_ids,
            baseline=e_base,
            incident=e_inc,
            explained_share=round(cand.explained_share, 4),
            surprise=round(cand.surprise, 4),
        )

    def _related(self, f: Findings) -> list[str]:
        """One line per related finding (other alerts, targets down, restarts, deploys), citing its query."""
        out: list[str] = []
        if f.related is None:
            return out
        for section in f.related.sections:
            ev = f.related_evidence.get(section.kind)
            if ev is None or not section.findings:
                continue
            out.extend(f"{line} [{ev}]" for line in section_lines(section, f.language))
        return out

    def _healthy(self, f: Findings, labels: dict[str, str]) -> str:
        """A segment of the same label(s) that stayed normal, to compare against."""
        name = next(iter(labels))
        ev = next((e for e in f.evidence if e.id == f.label_evidence.get(name)), None)
        if ev is None:
            return "another segment"
        normal = [s for s in ev.stats if s.labels.get(name) != labels[name]]
        if not normal:
            return "another segment"
        best = min(normal, key=lambda s: abs((s.incident or 0) - (s.baseline or 0)))
        return label_text({name: best.labels.get(name, "")})

    def _hint_keys(self, f: Findings) -> list[str]:
        names = promql.metric_names(f.condition.signal) if f.condition else []
        text = " ".join(names + [f.alert.name]).lower()
        return list(dict.fromkeys(key for word, key in HINT_WORDS.items() if word in text))

    def _remediation(self, f: Findings, report: Report, t: dict[str, Any]) -> list[str]:
        steps: list[str] = []
        if report.root_causes:
            labels = report.root_causes[0].labels
            steps.append(
                t["remediation_segment"].format(labels=label_text(labels), healthy=self._healthy(f, labels))
            )
            if f.condition is not None:
                matchers = [promql.Matcher(k, "=", v) for k, v in sorted(labels.items())]
                focused = promql.with_matchers(f.condition.signal, matchers).promql()
                steps.append(t["remediation_query"].format(promql=focused))
        elif f.localization is not None:
            steps.append(t["remediation_spread"])
        steps.extend(t["hints"][k] for k in self._hint_keys(f))
        steps.append(t["remediation_generic"].format(alert=f.alert.name))
        return steps

    def _prevention(self, f: Findings, report: Report, t: dict[str, Any]) -> list[str]:
        labels = (
            ", ".join(sorted(report.root_causes[0].labels)) if report.root_causes else ", ".join(f.labels[:2])
        )
        signal = f"`{f.condition.signal.promql()}`" if f.condition else f.alert.name
        out = [
            p.format(labels_generic=labels or "-", signal=signal, alert=f.alert.name) for p in t["prevention"]
        ]
        if "login" in self._hint_keys(f):
            out.insert(0, t["prevention_login"])
        return out
