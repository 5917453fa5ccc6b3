"""The request lifecycle: cases, their states, the transitions allowed between them, and deadlines.

Pure: time is passed in. A `request` opens a case keyed by its reference; posts and units then act on
it (acknowledge, progress, answer, close, reject, withdraw, ask for and give clarification, extend).
Every action is checked against `TRANSITIONS` and the actor's side (`ACTIONS_BY_SIDE`); a refused
action raises `InvalidTransition`, carrying the current state, and changes nothing.

Deadlines (Directive (EU) 2023/977, art. 5, as configured in config/deadlines.yaml): an answer is due
`answer_within` after the case opened, plus the time spent waiting for clarification (the clock is
suspended while a clarification request is pending); a post that cannot meet it records a new
expected time with its reason, which becomes the effective due time (the legal due time is kept for
statistics). An acknowledgement is due `ack_within` after opening, per priority.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from watchcentre.core.records import text_digest

Access = Literal["direct", "indirect"]


class CaseState(StrEnum):
    ROUTED = "routed"
    TRIAGE = "triage"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    ANSWERED = "answered"
    CLOSED = "closed"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


AWAITING_ANSWER = frozenset(
    {CaseState.ROUTED, CaseState.TRIAGE, CaseState.ACKNOWLEDGED, CaseState.IN_PROGRESS}
)
"""Open cases: an answer is still expected, deadlines run."""

AWAITING_ACK = frozenset({CaseState.ROUTED, CaseState.TRIAGE})
TERMINAL = frozenset({CaseState.CLOSED, CaseState.REJECTED, CaseState.WITHDRAWN})


class Action(StrEnum):
    ACK = "ack"
    PROGRESS = "progress"
    ANSWER = "answer"
    CLOSE = "close"
    REJECT = "reject"
    WITHDRAW = "withdraw"
    CLARIFY_REQUEST = "clarification_request"
    CLARIFY_ANSWER = "clarification_answer"
    EXTEND = "extend"


class Side(StrEnum):
    """Who acts: a post the case was routed to, the unit that sent the request, or the centre."""

    POST = "post"
    UNIT = "unit"
    CENTRE = "centre"


_R, _T, _K, _P, _N = (
    CaseState.ROUTED,
    CaseState.TRIAGE,
    CaseState.ACKNOWLEDGED,
    CaseState.IN_PROGRESS,
    CaseState.ANSWERED,
)

TRANSITIONS: dict[Action, dict[CaseState, CaseState]] = {
    Action.ACK: {_R: _K, _T: _K},
    Action.PROGRESS: {_R: _P, _T: _P, _K: _P},
    Action.ANSWER: {_R: _N, _T: _N, _K: _N, _P: _N},
    Action.CLOSE: {_K: CaseState.CLOSED, _P: CaseState.CLOSED, _N: CaseState.CLOSED},
    Action.REJECT: {s: CaseState.REJECTED for s in AWAITING_ANSWER},
    Action.WITHDRAW: {s: CaseState.WITHDRAWN for s in AWAITING_ANSWER},
    # state-preserving actions: allowed while an answer is awaited
    Action.CLARIFY_REQUEST: {s: s for s in AWAITING_ANSWER},
    Action.CLARIFY_ANSWER: {s: s for s in AWAITING_ANSWER},
    Action.EXTEND: {s: s for s in AWAITING_ANSWER},
}
"""action → {from state: to state}. Anything not listed is refused."""

ACTIONS_BY_SIDE: dict[Side, frozenset[Action]] = {
    Side.POST: frozenset(
        {Action.ACK, Action.PROGRESS, Action.ANSWER, Action.REJECT, Action.CLARIFY_REQUEST, Action.EXTEND}
    ),
    Side.UNIT: frozenset({Action.CLOSE, Action.WITHDRAW, Action.CLARIFY_ANSWER}),
    Side.CENTRE: frozenset(Action),
}

EVENT_TYPES: dict[Action, str] = {
    Action.ACK: "case_acknowledged",
    Action.PROGRESS: "case_in_progress",
    Action.ANSWER: "case_answered",
    Action.CLOSE: "case_closed",
    Action.REJECT: "case_rejected",
    Action.WITHDRAW: "case_withdrawn",
    Action.CLARIFY_REQUEST: "clarification_requested",
    Action.CLARIFY_ANSWER: "clarification_answered",
    Action.EXTEND: "deadline_extended",
}
CASE_OPENED = "case_opened"
DEADLINE_WARNING = "deadline_warning"
OVERDUE = "overdue"
CASE_EVENT_TYPES = frozenset({CASE_OPENED, *EVENT_TYPES.values()})

STATUS_TARGETS: dict[str, Action] = {
    "acknowledged": Action.ACK,
    "in_progress": Action.PROGRESS,
    "answered": Action.ANSWER,
    "closed": Action.CLOSE,
    "rejected": Action.REJECT,
    "withdrawn": Action.WITHDRAW,
}
"""The `state` of a `status` envelope → the action it asks for."""

REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,79}$"
_REFERENCE = re.compile(REFERENCE_PATTERN)


def valid_reference(reference: str) -> bool:
    return bool(_REFERENCE.match(reference))


class InvalidTransition(Exception):
    """An action the case's state (or the actor's side) does not allow, or one of its values (`field`)
    does not: the first is a conflict, the second an invalid request. Nothing was changed."""

    def __init__(self, current: CaseState, action: Action, problem: str, field: str = "state") -> None:
        super().__init__(problem if field == "state" else f"{field}: {problem}")
        self.current = current
        self.action = action
        self.problem = problem
        self.field = field


# -- deadlines as data ---------------------------------------------------------------------------


class Duration(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hours: float = Field(default=0, ge=0)
    days: float = Field(default=0, ge=0, description="Calendar days (24 hours each, weekends included).")

    @model_validator(mode="after")
    def _positive(self) -> Duration:
        if self.hours <= 0 and self.days <= 0:
            raise ValueError("a duration needs hours or days above zero")
        return self

    @property
    def delta(self) -> timedelta:
        return timedelta(days=self.days, hours=self.hours)


class AnswerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: Literal["urgent", "normal"]
    access: Literal["direct", "indirect", "any"] = "any"
    within: Duration


MAX_EXTENSION = timedelta(days=366)
"""The most `extend_at_most` may be configured to: a year is already no deadline at all."""


class DeadlineRules(BaseModel):
    """config/deadlines.yaml. The first answer rule matching (priority, access) applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warning_at: float = Field(
        default=0.75, gt=0, lt=1, description="Warn when this share of the time to answer has elapsed."
    )
    default_access: Access = Field(
        default="indirect", description="Access type assumed when a request does not say (direct|indirect)."
    )
    acknowledge: dict[Literal["urgent", "normal"], Duration]
    answer: list[AnswerRule] = Field(min_length=1)
    extend_at_most: Duration = Field(
        default=Duration(days=30),
        description="How far past the legal due time a post may set a new expected time (extend).",
    )

    @model_validator(mode="after")
    def _complete(self) -> DeadlineRules:
        missing = [p for p in ("urgent", "normal") if p not in self.acknowledge]
        if missing:
            raise ValueError(f"acknowledge: no deadline for priority {', '.join(missing)}")
        for priority in ("urgent", "normal"):
            for access in ("direct", "indirect"):
                if not any(r.priority == priority and r.access in (access, "any") for r in self.answer):
                    raise ValueError(f"answer: no rule for priority {priority} with {access} access")
        if self.extend_at_most.delta > MAX_EXTENSION:
            raise ValueError(f"extend_at_most: at most {MAX_EXTENSION.days} days")
        return self

    def answer_within(self, priority: str, access: str) -> timedelta:
        for rule in self.answer:
            if rule.priority == priority and rule.access in (access, "any"):
                return rule.within.delta
        raise KeyError((priority, access))  # unreachable: _complete checked every combination

    def ack_within(self, priority: str) -> timedelta:
        return self.acknowledge[priority].delta  # type: ignore[index]

    @classmethod
    def eu_default(cls) -> DeadlineRules:
        """Directive (EU) 2023/977, art. 5: urgent & direct 8 h, urgent & indirect 3 days, others 7 days."""
        return cls.model_validate(
            {
                "acknowledge": {"urgent": {"hours": 1}, "normal": {"hours": 24}},
                "answer": [
                    {"priority": "urgent", "access": "direct", "within": {"hours": 8}},
                    {"priority": "urgent", "access": "indirect", "within": {"days": 3}},
                    {"priority": "normal", "within": {"days": 7}},
                ],
            }
        )


# -- the case ------------------------------------------------------------------------------------


class Case(BaseModel):
    """One request and what became of it. Deadline fields are derived by `schedule`."""

    model_config = ConfigDict(frozen=True)

    reference: str
    sender: str = Field(description="The unit (or centre) that sent the request.")
    message_id: str = Field(description="The request's message_id.")
    priority: str
    access: Access
    subject: str
    crime_types: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    recipients: list[str] = Field(default_factory=list)
    handling: str | None = Field(
        default=None,
        description="The request's handling marking: every message attached to the case carries it.",
    )
    state: CaseState
    version: int = 0
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    answered_at: datetime | None = None
    closed_at: datetime | None = None
    answer_within_seconds: float
    warning_at: float = 0.75
    ack_due_at: datetime
    paused_seconds: float = Field(default=0, description="Time spent waiting for clarification, ended.")
    clarification_since: datetime | None = Field(default=None, description="A clarification is pending.")
    expected_at: datetime | None = Field(default=None, description="New expected time recorded by the post.")
    extension_reason: str | None = None
    reason: str | None = Field(
        default=None,
        description="The reason given with the latest action that had one (the audit: its digest).",
    )
    texts: dict[str, str] = Field(
        default_factory=dict,
        description="Every action's free text (question, answer, reason) by the SHA-256 its audit record"
        " carries: kept with the case, erased with it.",
    )
    due_at: datetime | None = Field(default=None, description="Effective due time; None while suspended.")
    warn_at: datetime | None = None
    legal_due_at: datetime | None = Field(
        default=None, description="Due time by the rules (pauses included)."
    )
    warning_raised_at: datetime | None = None
    overdue_raised_at: datetime | None = None
    ack_overdue_raised_at: datetime | None = None
    purged_at: datetime | None = Field(
        default=None, description="When its free text (subject, reasons) was erased (retention)."
    )

    @property
    def open(self) -> bool:
        return self.state in AWAITING_ANSWER

    def time_left(self, now: datetime) -> float | None:
        """Seconds until the effective due time (negative when late); frozen while suspended;
        None once the case no longer awaits an answer."""
        if not self.open:
            return None
        if self.clarification_since is not None:
            base = self.opened_at + timedelta(seconds=self.answer_within_seconds + self.paused_seconds)
            due = max(base, self.expected_at) if self.expected_at else base
            return (due - self.clarification_since).total_seconds()
        assert self.due_at is not None
        return (self.due_at - now).total_seconds()

    def overdue(self, now: datetime) -> bool:
        left = self.time_left(now)
        return left is not None and left < 0

    def answered_on_time(self) -> bool | None:
        if self.answered_at is None or self.legal_due_at is None:
            return None
        return self.answered_at <= self.legal_due_at


def schedule(case: Case) -> Case:
    """Recompute the derived deadline fields from the case's inputs."""
    within = timedelta(seconds=case.answer_within_seconds)
    legal = case.opened_at + within + timedelta(seconds=case.paused_seconds)
    if case.clarification_since is not None:
        return case.model_copy(update={"due_at": None, "warn_at": None, "legal_due_at": legal})
    due = max(legal, case.expected_at) if case.expected_at else legal
    warn = due - within * (1 - case.warning_at)
    return case.model_copy(update={"due_at": due, "warn_at": warn, "legal_due_at": legal})


def new_case(
    *,
    reference: str,
    sender: str,
    message_id: str,
    priority: str,
    access: str | None,
    subject: str,
    crime_types: list[str],
    countries: list[str],
    recipients: list[str],
    triage: bool,
    opened_at: datetime,
    rules: DeadlineRules,
    handling: str | None = None,
) -> Case:
    chosen: Access = "direct" if (access or rules.default_access) == "direct" else "indirect"
    return schedule(
        Case(
            reference=reference,
            sender=sender,
            message_id=message_id,
            priority=priority,
            access=chosen,
            subject=subject,
            crime_types=crime_types,
            countries=countries,
            recipients=recipients,
            handling=handling,
            state=CaseState.TRIAGE if triage else CaseState.ROUTED,
            opened_at=opened_at,
            updated_at=opened_at,
            answer_within_seconds=rules.answer_within(priority, chosen).total_seconds(),
            warning_at=rules.warning_at,
            ack_due_at=opened_at + rules.ack_within(priority),
        )
    )


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


def apply(
    case: Case,
    action: Action,
    side: Side,
    at: datetime,
    *,
    expected_at: datetime | None = None,
    reason: str | None = None,
    extend_at_most: timedelta = timedelta(days=30),
) -> tuple[Case, dict[str, Any]]:
    """The case after `action` by `side` at `at`, and the details for its audit event; or
    InvalidTransition. Alerts are re-armed when an extension moves the due time, which may be at
    most `extend_at_most` past the legal due time (DeadlineRules.extend_at_most)."""
    if action not in ACTIONS_BY_SIDE[side]:
        raise InvalidTransition(case.state, action, f"a {side.value} may not {action.value} a case")
    target = TRANSITIONS[action].get(case.state)
    if target is None:
        raise InvalidTransition(
            case.state, action, f"cannot {action.value} a case that is {case.state.value}"
        )
    update: dict[str, Any] = {"state": target, "updated_at": at}
    details: dict[str, Any] = {"action": action.value, "from": case.state.value, "to": target.value}
    if action is Action.ACK or (
        target in (CaseState.IN_PROGRESS, CaseState.ANSWERED) and not case.acknowledged_at
    ):
        update["acknowledged_at"] = case.acknowledged_at or at
    if action is Action.ANSWER:
        update["answered_at"] = at
    if target in TERMINAL:
        update["closed_at"] = at
    if action is Action.CLARIFY_REQUEST:
        if case.clarification_since is not None:
            raise InvalidTransition(case.state, action, "a clarification request is already pending")
        update["clarification_since"] = at
    elif action is Action.CLARIFY_ANSWER:
        if case.clarification_since is None:
            raise InvalidTransition(case.state, action, "no clarification request is pending")
        paused = max(0.0, (at - case.clarification_since).total_seconds())
        update["clarification_since"] = None
        update["paused_seconds"] = case.paused_seconds + paused
        details["paused_seconds"] = paused
    elif case.clarification_since is not None and (target in TERMINAL or target is CaseState.ANSWERED):
        # answered or ended while a clarification was pending: the pause ends there
        update["clarification_since"] = None
        update["paused_seconds"] = case.paused_seconds + max(
            0.0, (at - case.clarification_since).total_seconds()
        )
    if action is Action.EXTEND:
        if expected_at is None:
            raise InvalidTransition(case.state, action, "a new expected time is required", "expected_at")
        if not reason or not reason.strip():
            raise InvalidTransition(case.state, action, "an extension needs its reason", "reason")
        if expected_at <= at:
            raise InvalidTransition(case.state, action, "must be in the future", "expected_at")
        latest = schedule(case).legal_due_at
        assert latest is not None  # schedule always sets it
        latest += extend_at_most
        if expected_at > latest:
            raise InvalidTransition(
                case.state,
                action,
                f"at most {_span(extend_at_most)} past the legal due time, i.e. not after {latest.isoformat()}",
                "expected_at",
            )
        update["expected_at"] = expected_at
        update["extension_reason"] = reason.strip()
        update["warning_raised_at"] = None
        update["overdue_raised_at"] = None
        details.update(expected_at=expected_at.isoformat(), reason_sha256=text_digest(reason.strip()))
        update["texts"] = {**case.texts, details["reason_sha256"]: reason.strip()}
    elif reason:
        update["reason"] = reason
        details["reason_sha256"] = text_digest(reason)
        update["texts"] = {**case.texts, details["reason_sha256"]: reason}
    after = schedule(case.model_copy(update=update))
    if after.due_at is not None:
        details["due_at"] = after.due_at.isoformat()
    return after, details


def reassign(case: Case, recipients: list[str], at: datetime) -> tuple[Case, dict[str, Any]]:
    """The case after an operator routed its request by hand to `recipients`: they are its parties
    now, and a case waiting in triage awaits their acknowledgement (routed) once a post has it.
    Deadlines run from the opening, as before. The details go into the manual `routed` event."""
    state = case.state
    if state is CaseState.TRIAGE and any(r.startswith("post.") for r in recipients):
        state = CaseState.ROUTED
    after = case.model_copy(update={"recipients": list(recipients), "state": state, "updated_at": at})
    details = {
        "from": case.state.value,
        "to": state.value,
        "previous_recipients": list(case.recipients),
        "recipients": list(recipients),
    }
    return after, details
