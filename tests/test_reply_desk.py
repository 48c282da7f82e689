"""The reply desk: actions per intent, thresholds, holds, priorities, feedback and erasure
(operators/reply_desk.py), and the shard's join of a reply to the message it answers."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

from operators.analytics import EngagementAnalytics
from operators.event import Event
from operators.replies import INTENTS, ReplyVerdict
from operators.reply_desk import (
    FeedbackFact,
    ReplyDesk,
    ReplyFact,
    ReplyRead,
    RoutingPolicy,
    read_reply,
)
from schemas.hashing import RecipientHasher

T0 = 1_795_000_000_000  # 2026-11-18 11:06:40 UTC
DAY = 86_400_000


def verdict(intent: str, confidence: float = 0.95, auto: bool | None = None,
            urgent: bool = False, sentiment: float = 0.0) -> ReplyVerdict:
    scores = {i: (confidence if i == intent else (1 - confidence) / 8) for i in INTENTS}
    machine = intent in ("out_of_office", "auto_reply_other") if auto is None else auto
    return ReplyVerdict(intent, confidence, scores, machine, sentiment, urgent, "en",
                        f"rule {intent}")


def fact(intent: str, n: int = 1, ts: int = T0, confidence: float = 0.95, back: str = "",
         contact: str = "", engagement: float = 0.0, revenue: float = 0.0,
         **kw) -> ReplyFact:
    read = ReplyRead(verdict(intent, confidence, **kw), {"w:x": 1.0}, back, contact,
                     "hash-" + contact if contact else "", ())
    return ReplyFact(ts, f"r-{n}", f"m-{n}", "news.example", f"h{n}", "gmail.com", "c", "f",
                     read, engagement, revenue)


def test_an_out_of_office_is_held_until_its_return_date_or_for_the_default():
    desk = ReplyDesk()
    route, [hold] = desk.on_reply(fact("out_of_office", 1, back="2026-12-19"))
    assert (route.until, hold.until, hold.reason, route.queue) == (
        "2026-12-19", "2026-12-19", "out_of_office", "")
    route, [hold] = desk.on_reply(fact("out_of_office", 2))  # no date: held 14 days
    assert (hold.until, route.until, route.actions) == ("2026-12-02", "", ("hold",))
    route, [hold] = desk.on_reply(fact("out_of_office", 3, back="2027-11-01"))  # far: capped
    assert (hold.until, route.until) == ("2027-03-18", "2027-11-01")
    route, [hold] = desk.on_reply(fact("out_of_office", 4, back="2026-11-01"))  # past: default
    assert hold.until == "2026-12-02"


@pytest.mark.parametrize("intent, reason", [("unsubscribe_request", "reply_unsubscribe"),
                                            ("complaint", "reply_complaint")])
def test_a_permanent_suppression_needs_a_high_confidence_else_a_person_reviews(intent, reason):
    desk = ReplyDesk(RoutingPolicy(permanent_confidence=0.9))
    route, [s] = desk.on_reply(fact(intent, 1, confidence=0.93))
    assert (s.reason, s.until, "suppress" in route.actions) == (reason, "", True)
    route, suppressions = desk.on_reply(fact(intent, 2, confidence=0.7))
    assert suppressions == [] and "review" in route.actions and route.queue
    assert route.priority > 0


def test_wrong_person_suppresses_the_address_and_passes_the_contact_to_the_route_only():
    route, [s] = ReplyDesk().on_reply(fact("wrong_person", 1, confidence=0.6,
                                           contact="jane@acme.example"))
    assert s.reason == "wrong_person" and s.recipient_hash == "h1"
    assert (route.new_contact, route.new_contact_hash) == ("jane@acme.example",
                                                           "hash-jane@acme.example")
    # unsure and no contact offered: no suppression
    _route, suppressions = ReplyDesk().on_reply(fact("wrong_person", 2, confidence=0.6))
    assert suppressions == []


def test_queues_come_from_the_routing_table_and_actions_can_be_switched_off():
    policy = RoutingPolicy.from_mapping({"queues": {"interested": "deals", "other": ""},
                                         "hold_out_of_office": False})
    desk = ReplyDesk(policy)
    assert desk.on_reply(fact("interested", 1))[0].queue == "deals"
    assert desk.on_reply(fact("other", 2))[0].actions == ()
    route, suppressions = desk.on_reply(fact("out_of_office", 3))
    assert suppressions == [] and route.until == ""


@pytest.mark.parametrize("table, message", [
    ({"queues": {"angry": "x"}}, "unknown intent"),
    ({"permanent_confidence": 0.2}, "precision first"),
    ({"holdays": 3}, "unknown keys: holdays"),
    ({"queues": {"interested": 3}}, "must be a string"),
    ({"hold_days": "x"}, "must be a number"),
])
def test_a_bad_routing_table_is_refused_with_what_to_change(table, message):
    with pytest.raises(ValueError, match=message):
        RoutingPolicy.from_mapping(table)


def test_priority_rises_with_urgency_anger_and_the_recipients_value():
    desk = ReplyDesk()
    calm = desk.on_reply(fact("support_question", 1))[0].priority
    urgent = desk.on_reply(fact("support_question", 2, urgent=True))[0].priority
    angry = desk.on_reply(fact("support_question", 3, sentiment=-0.8))[0].priority
    valued = desk.on_reply(fact("support_question", 4, engagement=0.9, revenue=900))[0].priority
    assert calm < angry and calm < urgent and calm < valued
    assert all(0 <= p <= 100 for p in (calm, urgent, angry, valued))
    assert desk.on_reply(fact("auto_reply_other", 5))[0].priority == 0  # no queue


def test_a_reply_seen_again_is_routed_once():
    desk = ReplyDesk()
    assert desk.on_reply(fact("interested", 1))[0] is not None
    assert desk.on_reply(fact("interested", 1)) == (None, [])
    assert desk.duplicates == 1


class Recorder:
    """A stand-in text model that records what it is taught (the desk's contract)."""

    def __init__(self):
        self.taught: list[str] = []

    def predict(self, features, prior):  # agrees with the rules
        return SimpleNamespace(intent=prior.intent, confidence=prior.confidence,
                               scores=prior.scores, source="rules", terms=())

    def learn(self, features, intent, prior=None):
        assert prior is not None and all(isinstance(k, int) for k in features)  # hidden
        self.taught.append(intent)


def test_feedback_labels_teach_grade_and_join_to_the_route():
    desk = ReplyDesk()
    model = desk.model = Recorder()
    desk.on_reply(fact("interested", 1))
    desk.on_reply(fact("support_question", 2))
    desk.on_reply(fact("other", 3))
    [row] = desk.on_feedback(FeedbackFact(T0 + 60_000, "r-1", "relabelled", "", "not_interested"))
    assert (row.intent, row.routed_intent, row.latency_s) == ("not_interested", "interested", 60)
    [row] = desk.on_feedback(FeedbackFact(T0 + 90_000, "r-2", "first_response", "", ""))
    assert row.queue == "support" and model.taught == ["not_interested"]
    desk.on_feedback(FeedbackFact(T0 + 99_000, "r-2", "resolved", "", ""))  # confirms
    # reassigned to a queue two intents route to (sales): no label, but the row says where
    [row] = desk.on_feedback(FeedbackFact(T0 + 120_000, "r-3", "reassigned", "sales", ""))
    assert model.taught == ["not_interested", "support_question"] and row.queue == "sales"
    # ... to a queue one intent routes to: that intent is the label
    desk.on_reply(fact("other", 4))
    desk.on_feedback(FeedbackFact(T0 + 130_000, "r-4", "reassigned", "escalation", ""))
    assert model.taught[-1] == "complaint"
    assert (desk.graded, desk.correct) == (3, 1)


def test_feedback_before_its_reply_waits_and_unknown_feedback_makes_no_row():
    analytics = EngagementAnalytics()
    desk = analytics.aggregates
    out = analytics.apply([])
    desk.apply([FeedbackFact(T0 + 5, "r-1", "resolved", "", "")], out)
    assert out.feedback == []
    desk.apply([fact("interested", 1, ts=T0 + 10)], out)
    assert [r.action for r in out.feedback] == ["resolved"]


def test_erasure_and_age_forget_waiting_replies_and_a_desk_pickles():
    desk = ReplyDesk()
    desk.on_reply(fact("interested", 1))
    desk.on_reply(fact("interested", 2))
    assert desk.forget("h1") == ["r-1"] and list(desk.pending) == ["r-2"]
    again = pickle.loads(pickle.dumps(desk))
    assert again.expire(T0 + 31 * DAY) == 1 and not again.pending


def delivered(n: int, ts: int) -> tuple[Event, None]:
    return (Event(f"d{n}", ts, "delivered", "news.example", f"h{n}", "gmail.com", "gmail.com",
                  f"m-{n}@acme.example", "winter", "welcome", "", "", "", "", 0, "", "", "",
                  "", 0.0, "", {}, "", 0, 0), None)


def reply(n: int, ts: int, body: str, message_id: str, headers=None,
          who: int | None = None) -> tuple[Event, None]:
    hasher = RecipientHasher(b"k")
    read = read_reply("Re: News", body, headers or {}, ts, "", hasher.scrub, hasher.recipient,
                      lambda s, t: {})
    return (Event(f"r{n}", ts, "reply", "news.example", f"h{n if who is None else who}",
                  "gmail.com", "gmail.com",
                  message_id, "", "", "", "", "", "", 0, "", "", "", "", 0.0, "",
                  {"reply_id": f"r-{n}", "reply": read}, "", 0, 0), None)


def test_the_shard_joins_a_reply_to_its_message_and_only_people_engage():
    analytics = EngagementAnalytics()
    out = analytics.apply([
        delivered(1, T0), delivered(2, T0),
        reply(1, T0 + 600_000, "Sounds great, send me the pricing please.",
              "<m-1@acme.example>"),
        reply(2, T0 + 2_000, "I am out of the office until Monday.", "m-2@acme.example",
              {"Auto-Submitted": "auto-replied"}),
    ])
    routes = {r.reply_id: r for r in out.routes}
    assert routes["r-1"].flow_id == "welcome" and routes["r-1"].campaign_id == "winter"
    assert routes["r-1"].message_id == "m-1@acme.example"
    replies = {e.event.event_id: e for e in out.events if e.event.type == "reply"}
    assert replies["r1"].interaction.is_human and replies["r1"].interaction.latency_s == 600
    assert not replies["r2"].interaction.is_human  # a machine answered: no engagement
    assert replies["r2"].interaction.reason == "auto_reply"


def unsubscribe(n: int, ts: int) -> tuple[Event, None]:
    return (Event(f"u{n}", ts, "unsubscribe", "news.example", f"h{n}", "gmail.com",
                  "gmail.com", f"m-{n}@acme.example", "", "", "", "", "", "", 0, "", "", "",
                  "", 0.0, "", {}, "", 0, 0), None)


OOO = "I am out of the office until Friday."
AUTO = {"Auto-Submitted": "auto-replied"}


def test_the_strongest_suppression_is_published_last_of_its_key():
    """`mailflow.suppressions` is compacted: a hold published after a permanent suppression
    would undo it for a client reading from the start."""
    analytics = EngagementAnalytics()
    # suppressed for good first: a later out-of-office holds nothing
    out = analytics.apply([delivered(1, T0), unsubscribe(1, T0 + 1000),
                           reply(1, T0 + 2000, OOO, "m-1@acme.example", AUTO)])
    assert out.reply_suppressions == []
    assert out.routes[0].intent == "out_of_office" and "hold" not in out.routes[0].actions
    # a hold first, then an unsubscribe: the permanent record is published again after it
    out = analytics.apply([delivered(2, T0), reply(2, T0 + 2000, OOO, "m-2@acme.example", AUTO),
                           unsubscribe(2, T0 + 9000)])
    assert [(s.reason, bool(s.until)) for s in out.reply_suppressions] == [
        ("out_of_office", True), ("unsubscribe", False)]
    # a reply's own permanent suppression is not followed by a hold either
    out = analytics.apply([
        delivered(3, T0), reply(3, T0 + 2000, "Please remove me from your mailing list. "
                                "Unsubscribe me now.", "m-3@acme.example"),
        reply(4, T0 + 3000, OOO, "m-3@acme.example", AUTO, who=3)])
    assert [s.reason for s in out.reply_suppressions] == ["reply_unsubscribe"]


class Overconfident:
    """A text model sure of the opposite of the rules."""

    def __init__(self, intent: str):
        self.intent = intent

    def predict(self, features, prior):
        return SimpleNamespace(intent=self.intent, confidence=0.99,
                               scores={self.intent: 0.99}, source="model", terms=("stop",))

    def learn(self, features, intent, prior=None):
        pass


def test_a_learnt_models_word_alone_never_suppresses_for_good():
    desk = ReplyDesk(model=Overconfident("unsubscribe_request"))
    route, suppressions = desk.on_reply(fact("interested", 1))
    assert route.intent == "unsubscribe_request" and route.rule_intent == "interested"
    assert suppressions == [] and "review" in route.actions
    assert route.explanation.endswith("terms: stop") and route.model == "model"
    # rules and model agree and both are sure: suppressed
    route, [s] = desk.on_reply(fact("unsubscribe_request", 2, confidence=0.95))
    assert s.reason == "reply_unsubscribe"


def test_an_erasure_tombstones_the_persons_routes():
    from operators.analytics import FlowAggregates, empty_batch
    from operators.learning import ForgetMessages

    aggregates, out = FlowAggregates(), empty_batch()
    aggregates.apply([fact("interested", 1), fact("interested", 2)], out)
    aggregates.apply([ForgetMessages(T0 + 5, "h1", (), ())], out)
    assert out.erased_routes == ["r-1"]


def test_routing_and_the_reply_model_come_from_the_config_file_and_bad_ones_are_refused(
        tmp_path):
    from flows.replies import starting_reply_model
    from flows.settings import ConfigError, load_settings

    config = tmp_path / "mailflow.toml"
    config.write_text('reply_model = "empty"\n[routing]\npermanent_confidence = 0.95\n'
                      '[routing.queues]\ninterested = "deals"\n')
    settings = load_settings(str(config), environ={})
    policy = settings.routing_policy()
    assert policy.queue("interested") == "deals" and policy.permanent_confidence == 0.95
    assert starting_reply_model(settings.reply_model).n_learned == 0
    assert starting_reply_model("off") is None
    config.write_text('[routing.queues]\nangry = "x"\n')
    with pytest.raises(ConfigError, match=r"\[routing\]: queues: unknown intent 'angry'"):
        load_settings(str(config), environ={})
    with pytest.raises(ConfigError, match="reply_model must be corpus, empty or off"):
        load_settings(overrides={"reply_model": "bert"}, environ={})
