"""Reply routing: what the parse step reads from a reply, and what the models' step does.

    parse: read_reply ─► ReplyRead (verdict, text features, return date, contact)
    shard: the reply joined to the message it answers ─► ReplyFact ─┐
    feedback from the helpdesk ─► FeedbackFact ──────────────────────┤
                                                                     ▼
    models' step: ReplyDesk ─► Route (mailflow.routes), ReplySuppression
                               (mailflow.suppressions), replies and reply_feedback rows

A reply's body is personal data: `read_reply` runs on it in the parse step,
before any of it is stored, and keeps only what routing needs: the rules'
verdict (`operators.replies.classify`), the text model's features of the
person's own words (after quoted text and signatures are cut and addresses
scrubbed), the out-of-office return date and an offered contact. The body,
subject and headers go no further.

`ReplyDesk` decides, per reply, in event-time order (the models' step sees
every shard's replies and the helpdesk's feedback in one order):

- the intent: the rules' verdict, blended with the online text model once
  that model has learnt (`operators.reply_model`);
- the actions: a temporary hold for an out-of-office until its return date
  (14 days without one); a permanent suppression for an unsubscribe request or
  a complaint only above a high confidence (below it, a person reviews it:
  a wrong suppression loses a customer); a suppression of the wrong person's
  address; for everything else, a queue;
- the queue from the routing table, and a priority 0-100 from the intent,
  urgency, sentiment and what the recipient is worth (engagement, revenue);
- from feedback: the delayed label the text model learns from, and the rows
  the queue KPIs are computed from.

>>> desk = ReplyDesk(RoutingPolicy())
>>> read = ReplyRead(ReplyVerdict("out_of_office", 0.97, {"out_of_office": 0.97}, True, 0.0,
...                               False, "en", "header: Auto-Submitted"),
...                  {}, "2026-12-19", "", "", ())
>>> route, holds = desk.on_reply(ReplyFact(1_796_000_000_000, "r-1", "m-1", "news.example",
...                              "h1", "gmail.com", "c", "welcome", read, 0.0, 0.0))
>>> route.intent, route.queue, route.actions, route.until
('out_of_office', '', ('hold',), '2026-12-19')
>>> [(s.reason, s.until) for s in holds]
[('out_of_office', '2026-12-19')]
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from operators.replies import (
    INTENTS,
    SUPPRESS_THRESHOLD,
    ReplyVerdict,
    classify,
    html_to_text,
    strip_quoted,
)
from operators.reply_extract import contacts, find_return, references
from operators.reply_model import hidden_features

_DAY_MS = 86_400_000
#: Default queues (intent -> queue; "" routes nowhere). `[routing]` in the TOML replaces them.
DEFAULT_QUEUES: dict[str, str] = {
    "interested": "sales",
    "not_interested": "",
    "wrong_person": "sales",
    "support_question": "support",
    "complaint": "escalation",
    "unsubscribe_request": "",
    "other": "support",
    "out_of_office": "",
    "auto_reply_other": "",
}
#: Starting priority per intent (0-100, higher first); urgency, anger and value add to it.
_BASE_PRIORITY = {"complaint": 60, "interested": 55, "support_question": 45,
                  "unsubscribe_request": 35, "wrong_person": 30, "other": 25,
                  "not_interested": 15, "out_of_office": 0, "auto_reply_other": 0}
_MAX_SUBJECT, _MAX_BODY = 1000, 64 * 1024
_HTML = re.compile(r"<(html|body|div|p|br|table|span)\b", re.IGNORECASE)
_DIGITS = re.compile(r"\+?\d[\d ()./-]{5,}\d")


class ReplyRead(NamedTuple):
    """What the parse step read from one reply before its text was dropped."""

    verdict: ReplyVerdict  # the rules'
    features: dict[str, float]  # the text model's, of the person's own words (scrubbed)
    return_date: str  # "YYYY-MM-DD" (an out-of-office's return), or ""
    contact: str  # an address the reply offers instead ("" none): only for the route record
    contact_hash: str  # its recipient hash
    references: tuple[str, ...]  # order and ticket numbers the reply names


class ReplyFact(NamedTuple):
    """A reply, joined in its recipient's shard to the message it answers."""

    ts_ms: int
    reply_id: str
    message_id: str
    sender: str
    recipient_hash: str
    domain: str
    campaign_id: str
    flow_id: str
    read: ReplyRead
    engagement: float  # the recipient's engagement rate (0..1) as the shard knows it
    revenue: float  # their conversions' value so far
    suppressed: bool = False  # already suppressed for good (unsubscribe, complaint, bounce)


class Suppressed(NamedTuple):
    """A permanent suppression from an event (unsubscribe, complaint, hard bounce), told to
    the desk so that a hold it published earlier is overwritten: `mailflow.suppressions`
    is compacted, and the strongest record must be the last of its key."""

    ts_ms: int
    recipient_hash: str
    reason: str
    sender: str
    domain: str
    event_id: str


class FeedbackFact(NamedTuple):
    """The helpdesk about one routed reply (the delayed label)."""

    ts_ms: int
    reply_id: str
    action: str  # reassigned, relabelled, first_response, resolved
    queue: str
    intent: str


class RoutingPolicy(NamedTuple):
    """What to do with each intent (`[routing]` in the TOML)."""

    queues: Mapping[str, str] = DEFAULT_QUEUES
    # suppress for good only at or above this confidence (the rules' measured threshold)
    permanent_confidence: float = SUPPRESS_THRESHOLD
    review_queue: str = "review"  # where an unsure unsubscribe or complaint goes
    hold_days: int = 14  # an out-of-office without a return date
    max_hold_days: int = 120  # a return date further out is capped
    hold_out_of_office: bool = True
    suppress_unsubscribe: bool = True
    suppress_complaint: bool = True
    suppress_wrong_person: bool = True

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> RoutingPolicy:
        """A policy from `[routing]`; unknown keys, intents or values are refused.

        >>> p = RoutingPolicy.from_mapping({"queues": {"interested": "deals"},
        ...                                 "permanent_confidence": 0.95})
        >>> p.queue("interested"), p.queue("complaint"), p.permanent_confidence
        ('deals', 'escalation', 0.95)
        >>> RoutingPolicy.from_mapping({"queues": {"angry": "x"}})
        Traceback (most recent call last):
        ...
        ValueError: queues: unknown intent 'angry' (known: out_of_office, ...)
        """
        table = dict(table or {})
        known = set(cls._fields)
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"unknown keys: {', '.join(unknown)} (known: "
                             f"{', '.join(sorted(known))})")
        queues = dict(DEFAULT_QUEUES)
        given = table.pop("queues", {}) or {}
        if not isinstance(given, Mapping):
            raise ValueError("queues must be a table of intent = \"queue\"")
        for intent, queue in given.items():
            if intent not in INTENTS:
                raise ValueError(f"queues: unknown intent {intent!r} (known: {INTENTS[0]}, ...)")
            if not isinstance(queue, str):
                raise ValueError(f"queues.{intent} must be a string (\"\" routes nowhere)")
            queues[intent] = queue
        values: dict[str, Any] = {"queues": queues}
        defaults = cls()
        for name, value in table.items():
            kind = type(getattr(defaults, name))
            if kind is bool:
                if not isinstance(value, bool | int):
                    raise ValueError(f"{name} must be true or false")
                value = bool(value)
            elif kind in (int, float):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number")
                value = kind(value)
            elif not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            values[name] = value
        policy = cls(**values)
        if not 0.5 <= policy.permanent_confidence <= 1.0:
            raise ValueError("permanent_confidence must be 0.5..1 (precision first)")
        if not 1 <= policy.hold_days <= policy.max_hold_days:
            raise ValueError("hold_days must be 1..max_hold_days")
        return policy

    def queue(self, intent: str) -> str:
        return self.queues.get(intent, self.queues.get("other", ""))

    def intent_of_queue(self, queue: str) -> str:
        """The one intent routed to `queue`, or "" if none or several are."""
        found = [i for i in INTENTS if self.queue(i) == queue]
        return found[0] if len(found) == 1 else ""


class Route(NamedTuple):
    """One routing decision (`mailflow.routes`, the `replies` table)."""

    reply_id: str
    ts_ms: int
    message_id: str
    sender: str
    domain: str
    recipient_hash: str
    campaign_id: str
    flow_id: str
    intent: str
    confidence: float
    scores: dict[str, float]
    queue: str
    priority: int
    auto: bool
    sentiment: float
    urgent: bool
    language: str
    until: str  # "YYYY-MM-DD": an out-of-office's return date (when they are back), or ""
    actions: tuple[str, ...]  # hold, suppress, review, route
    explanation: str
    model: str  # rules, blend or model
    rule_intent: str
    new_contact: str  # raw: for the route record's consumer only, never a table
    new_contact_hash: str
    references: tuple[str, ...]


class ReplySuppression(NamedTuple):
    """A suppression (or a hold, with `until`) made from a reply."""

    recipient_hash: str
    reason: str  # out_of_office, reply_unsubscribe, reply_complaint, wrong_person
    ts_ms: int
    until: str  # "YYYY-MM-DD" (first day mail may go again), or "" for good
    sender: str
    domain: str
    reply_id: str


class FeedbackRow(NamedTuple):
    """One feedback event joined to its route (`reply_feedback`)."""

    reply_id: str
    ts_ms: int
    action: str
    queue: str  # the queue after this action
    intent: str  # the intent after this action
    routed_queue: str
    routed_intent: str
    reply_ts_ms: int  # 0 when the reply is unknown (or forgotten)
    latency_s: float  # seconds since the reply, 0 when unknown


def read_reply(subject: str, body: str, headers: Mapping[str, str], ts_ms: int,
               recipient: str, scrub: Callable[[str], str], hash_address: Callable[[str], str],
               features_of: Callable[[str, str], dict[str, float]]) -> ReplyRead:
    """Classify and extract from one reply's raw text (in the parse step, before scrubbing).

    `recipient` (the replier's own address, "" if unknown) is never offered as a contact;
    `scrub` replaces addresses in the text the features are made from.

    >>> r = read_reply("Re: Hello", "I am not the right person, please contact jane@acme.example.",
    ...                {}, 1_796_000_000_000, "bob@acme.example", lambda t: t,
    ...                lambda a: "h:" + a, lambda s, t: {})
    >>> r.verdict.intent, r.contact, r.contact_hash
    ('wrong_person', 'jane@acme.example', 'h:jane@acme.example')
    """
    # What a person writes fits easily: a longer text is cut, so no input costs much.
    subject, body = (subject or "")[:_MAX_SUBJECT], (body or "")[:_MAX_BODY]
    if "<" in body and _HTML.search(body):
        body = html_to_text(body)  # the dates, contacts and features read the words
    verdict = classify(subject, body, headers, ts_ms)
    text = strip_quoted(body) if body else ""
    received = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
    back = ""
    if verdict.intent == "out_of_office":
        found = find_return(f"{subject}\n{text}", received, verdict.language)
        back = found.date.isoformat() if found is not None else ""
    offered = contacts(text, exclude=recipient or None) if "@" in text else []
    contact = offered[0] if offered else ""
    features = features_of(scrub(subject), scrub(text))
    return ReplyRead(verdict, features, back, contact,
                     hash_address(contact) if contact else "", tuple(references(text)[:5]))


class _Pending(NamedTuple):
    ts_ms: int
    recipient_hash: str
    intent: str
    queue: str
    features: dict[str, float]
    prior: ReplyVerdict
    learnt: str  # the label learnt from so far ("" none)


class ReplyDesk:
    """Routes replies and learns from the helpdesk's feedback (in event-time order)."""

    #: How long a reply waits for its feedback, and at most how many wait.
    keep_days = 30
    max_pending = 200_000
    max_early = 20_000

    def __init__(self, policy: RoutingPolicy | None = None, model: Any = None):
        self.policy = policy or RoutingPolicy()
        self.model = model  # operators.reply_model.ReplyModel, or None: rules only
        self.pending: dict[str, _Pending] = {}
        self.early: dict[str, list[FeedbackFact]] = {}  # feedback before its reply
        self.by_intent: dict[str, int] = {}  # routed replies per intent
        self.by_action: dict[str, int] = {}  # hold, suppress, review, route
        self.duplicates = 0
        self.holds: dict[str, str] = {}  # recipient hash -> end of a hold this desk published
        self.learnt = 0
        self.correct = 0  # graded intents the desk got right (prequential)
        self.graded = 0

    def configure(self, policy: RoutingPolicy) -> None:
        self.policy = policy

    # -- replies ----------------------------------------------------------------------------
    def on_reply(self, fact: ReplyFact) -> tuple[Route | None, list[ReplySuppression]]:
        """Decide one reply: its route and what it suppresses (None for a duplicate)."""
        if fact.reply_id and fact.reply_id in self.pending:
            self.duplicates += 1
            return None, []
        read, policy = fact.read, self.policy
        prior = read.verdict
        intent, confidence, scores, model, terms = prior.intent, prior.confidence, \
            prior.scores, "rules", ()
        if self.model is not None and read.features:
            mv = self.model.predict(read.features, prior)
            intent, confidence, scores, model, terms = (mv.intent, mv.confidence, mv.scores,
                                                        mv.source, mv.terms)
        actions: list[str] = []
        suppressions: list[ReplySuppression] = []
        queue = policy.queue(intent)
        until = ""

        def suppress(reason: str, hold_until: str = "", who: str = "") -> None:
            suppressions.append(ReplySuppression(who or fact.recipient_hash, reason,
                                                 fact.ts_ms, hold_until, fact.sender,
                                                 fact.domain, fact.reply_id))

        if intent == "out_of_office":
            until = read.return_date  # the route says when they are back (or nothing)
        if intent == "out_of_office" and policy.hold_out_of_office:
            # A hold never follows a permanent suppression (compaction keeps the last).
            hold_until = self._hold_until(fact.ts_ms, read.return_date)
            if not fact.suppressed and self.holds.get(fact.recipient_hash) != "":
                suppress("out_of_office", hold_until)
                self.holds[fact.recipient_hash] = hold_until
                actions.append("hold")
        elif intent in ("unsubscribe_request", "complaint"):
            enabled = (policy.suppress_unsubscribe if intent == "unsubscribe_request"
                       else policy.suppress_complaint)
            # For good only when the rules say so too, each sure enough: a learnt model's
            # word alone never costs a contact.
            sure = min(confidence, prior.confidence) if prior.intent == intent else 0.0
            if enabled and sure >= policy.permanent_confidence:
                suppress("reply_unsubscribe" if intent == "unsubscribe_request"
                         else "reply_complaint")
                self.holds[fact.recipient_hash] = ""  # for good: no hold may follow
                actions.append("suppress")
            else:  # unsure: a person decides; nothing is suppressed on a guess
                queue = queue or policy.review_queue
                actions.append("review")
        elif intent == "wrong_person" and policy.suppress_wrong_person and (
                prior.intent == intent
                and (prior.confidence >= policy.permanent_confidence or read.contact_hash)):
            suppress("wrong_person")
            self.holds[fact.recipient_hash] = ""
            actions.append("suppress")
        if queue:
            actions.append("route")
        explanation = prior.explanation
        if terms:
            explanation = f"{explanation}; terms: {', '.join(terms)}" if explanation \
                else f"terms: {', '.join(terms)}"
        route = Route(
            fact.reply_id, fact.ts_ms, fact.message_id, fact.sender, fact.domain,
            fact.recipient_hash, fact.campaign_id, fact.flow_id, intent, round(confidence, 4),
            {k: round(v, 4) for k, v in scores.items()}, queue,
            self._priority(intent, prior, fact) if queue else 0, prior.auto,
            round(prior.sentiment, 3), prior.urgent, prior.language, until, tuple(actions),
            _DIGITS.sub("#", explanation)[:500], model, prior.intent, read.contact,
            read.contact_hash, read.references)
        if fact.reply_id:
            self._remember(fact, route, read)
        self.by_intent[intent] = self.by_intent.get(intent, 0) + 1
        for action in actions:
            self.by_action[action] = self.by_action.get(action, 0) + 1
        return route, suppressions

    def _hold_until(self, ts_ms: int, return_date: str) -> str:
        """The first day mail may go again: the return date (capped), or `hold_days` on."""
        today = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).date()
        policy = self.policy
        if return_date:
            back = dt.date.fromisoformat(return_date)
            if today < back <= today + dt.timedelta(days=policy.max_hold_days):
                return back.isoformat()
            if back > today:
                return (today + dt.timedelta(days=policy.max_hold_days)).isoformat()
        return (today + dt.timedelta(days=policy.hold_days)).isoformat()

    def _priority(self, intent: str, prior: ReplyVerdict, fact: ReplyFact) -> int:
        """0-100: the intent's base, +20 urgent, up to +15 for anger, up to +20 for value."""
        value = 0.5 * min(1.0, max(0.0, fact.engagement)) + 0.5 * min(
            1.0, math.log1p(max(0.0, fact.revenue)) / math.log1p(1000.0))
        p = (_BASE_PRIORITY.get(intent, 25) + (20 if prior.urgent else 0)
             + 15 * max(0.0, -prior.sentiment) + 20 * value)
        return int(round(min(100.0, max(0.0, p))))

    def _remember(self, fact: ReplyFact, route: Route, read: ReplyRead) -> None:
        # the features as the model keys them: no readable word waits in the state
        self.pending[fact.reply_id] = _Pending(fact.ts_ms, fact.recipient_hash, route.intent,
                                               route.queue, hidden_features(read.features),
                                               read.verdict, "")
        if len(self.pending) > self.max_pending:  # the oldest waiting reply goes first
            del self.pending[next(iter(self.pending))]

    def on_suppressed(self, fact: Suppressed) -> list[ReplySuppression]:
        """A permanent suppression from an event: published again after a hold of ours
        (so it is the last record of its key), and no hold follows it."""
        previous = self.holds.get(fact.recipient_hash)
        if not previous:  # no hold of ours to overwrite (the shard flags later replies)
            return []
        self.holds[fact.recipient_hash] = ""
        return [ReplySuppression(fact.recipient_hash, fact.reason, fact.ts_ms, "",
                                 fact.sender, fact.domain, fact.event_id)]

    def early_feedback(self, reply_id: str) -> list[FeedbackFact]:
        """Feedback that arrived before its reply (now known): to apply after routing it."""
        return self.early.pop(reply_id, [])

    # -- feedback ---------------------------------------------------------------------------
    def on_feedback(self, fact: FeedbackFact) -> list[FeedbackRow]:
        """Join feedback to its route, learn the label it gives, and a row for the KPIs."""
        pending = self.pending.get(fact.reply_id)
        if pending is None:
            waiting = self.early.setdefault(fact.reply_id, [])
            if len(waiting) < 20:
                waiting.append(fact)
            if len(self.early) > self.max_early:
                del self.early[next(iter(self.early))]
            return []
        label = ""
        queue, intent = pending.queue, pending.intent
        if fact.action == "relabelled" and fact.intent in INTENTS:
            label = intent = fact.intent
            if fact.queue:
                queue = fact.queue
        elif fact.action == "reassigned":
            queue = fact.queue or queue
            if fact.intent in INTENTS:
                label = intent = fact.intent
            else:
                label = self.policy.intent_of_queue(queue) if queue != pending.queue else ""
                intent = label or intent
        elif fact.action == "resolved" and not pending.learnt:
            label = pending.intent  # resolved as routed: the agents confirmed the intent
        if label and label != pending.learnt:
            if not pending.learnt:  # graded once: the first label against the first route
                self.graded += 1
                self.correct += label == pending.intent
            if self.model is not None and pending.features:
                # with the rules' own verdict: their confusion learns too (what corrects a
                # rule the agents keep overruling)
                self.model.learn(pending.features, label, pending.prior)
            self.learnt += 1
        row = FeedbackRow(fact.reply_id, fact.ts_ms, fact.action, queue, intent,
                          pending.queue, pending.intent, pending.ts_ms,
                          max(0.0, (fact.ts_ms - pending.ts_ms) / 1000.0))
        self.pending[fact.reply_id] = pending._replace(
            queue=queue, intent=intent, learnt=label or pending.learnt)
        return [row]

    def waiting_feedback(self) -> int:
        """Feedback about replies not (yet) seen: kept `keep_days`, counted, never lost."""
        return sum(len(v) for v in self.early.values())

    # -- housekeeping -----------------------------------------------------------------------
    def expire(self, ts_ms: int) -> int:
        """Forget replies older than `keep_days` (their feedback no longer teaches)."""
        horizon = ts_ms - self.keep_days * _DAY_MS
        old = [k for k, p in self.pending.items() if p.ts_ms < horizon]
        for k in old:
            del self.pending[k]
        stale = [k for k, fs in self.early.items() if fs and fs[-1].ts_ms < horizon]
        for k in stale:
            del self.early[k]
        today = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).date().isoformat()
        # ended holds go; "" (suppressed for good by a reply or over a hold) stays
        self.holds = {h: until for h, until in self.holds.items() if not until or until > today}
        return len(old)

    def forget(self, recipient_hash: str) -> list[str]:
        """An erasure: the recipient's replies are forgotten (features included); their
        reply ids (the job tombstones their routes on the compacted `mailflow.routes`)."""
        gone = [k for k, p in self.pending.items() if p.recipient_hash == recipient_hash]
        for k in gone:
            del self.pending[k]
        self.holds.pop(recipient_hash, None)
        return gone
