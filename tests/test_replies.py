"""operators/replies.py: reply intents, machine replies, quote stripping, language.

The corpus (schemas/data/replies_corpus.jsonl) is the project's own: every reply in
tests/data/make_replies_corpus.py was written by hand, one by one, in the style of real
replies to marketing and transactional mail (EN and DE mostly, some FR/ES/NL; one-liners,
rants, Outlook and Gmail habits, header-only and text-only automatic replies, tricky
negatives such as "please don't unsubscribe me"). A seeded pass (seed 17) then sends each
human reply a second time the way mail clients do: with the quoted newsletter and its own
"unsubscribe" link, a signature, a mobile footer, sometimes as HTML. Labels are the
author's judgement. Regenerate with ``.venv/bin/python tests/data/make_replies_corpus.py``.

The corpus grew in batches: each later batch was written *before* the rules that now handle
it, scored (fresh human replies: roughly 45-65% right; machine replies and unsubscribes:
80-100%), and the rules were then widened until it passed. So the figures printed here are
fit, not generalisation: they guard against regressions; a held-out set measures the rest.

Holdout batches (tests/data/replies_holdout_{a..j}.jsonl, issue 17) were written by another
hand, each scored *before* the rules were changed for it (first scores: A 0.827 accuracy,
B 0.767, C 0.755 — C is suppression near-misses —, D 0.664, E 0.770 and F 0.697 in new
domains, G 0.792 messy mainstream replies with typos, H 0.915 mainstream, I 0.841 longer
mixed replies, J 0.950 weighted like a reply inbox), then fixed on;
they carry the reply's time
``ts`` and, for out-of-office notices, the expected ``return_date``. The thresholds below are
the fitted figures minus slack: they catch regressions, the first scores are the honest ones.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from operators.replies import (
    INTENTS,
    SUPPRESS_THRESHOLD,
    SUPPRESSING,
    ReplyVerdict,
    classify,
    detect_language,
    html_to_text,
    strip_quoted,
)
from operators.reply_extract import return_date

CORPUS = Path(__file__).resolve().parents[1] / "schemas" / "data" / "replies_corpus.jsonl"
HOLDOUTS = {name: Path(__file__).parent / "data" / f"replies_holdout_{name}.jsonl"
            for name in "abcdefghij"}
# Batch C is the suppression near-miss set (no machine replies): checked on its own.
INTENT_BATCHES = [name for name in HOLDOUTS if name != "c"]


def _corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def verdicts() -> list[tuple[dict, ReplyVerdict]]:
    return [(r, classify(r["subject"], r["body"], r["headers"])) for r in _corpus()]


def test_corpus_is_large_and_varied():
    rows = _corpus()
    assert len(rows) >= 200
    assert len({(r["subject"], r["body"]) for r in rows}) == len(rows)
    langs = Counter(r["language"] for r in rows)
    assert langs["en"] >= 80 and langs["de"] >= 60
    assert all(langs[x] >= 5 for x in ("fr", "es", "nl"))
    assert set(r["intent"] for r in rows) == set(INTENTS)
    variants = Counter(r["variant"] for r in rows)
    assert variants["quoted"] >= 50 and variants["html"] >= 15


def test_per_intent_precision_and_recall(verdicts):
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for row, v in verdicts:
        if v.intent == row["intent"]:
            tp[v.intent] += 1
        else:
            fp[v.intent] += 1
            fn[row["intent"]] += 1
    print(f"\n{'intent':22} {'n':>4} {'precision':>9} {'recall':>7}")
    for intent in INTENTS:
        n = tp[intent] + fn[intent]
        p = tp[intent] / max(1, tp[intent] + fp[intent])
        r = tp[intent] / max(1, n)
        print(f"{intent:22} {n:4d} {p:9.3f} {r:7.3f}")
        assert r >= 0.8, intent
    accuracy = sum(tp.values()) / len(verdicts)
    print(f"accuracy {accuracy:.3f} on {len(verdicts)} replies")
    assert accuracy >= 0.9
    unsub_p = tp["unsubscribe_request"] / max(1, tp["unsubscribe_request"]
                                              + fp["unsubscribe_request"])
    complaint_p = tp["complaint"] / max(1, tp["complaint"] + fp["complaint"])
    assert unsub_p >= 0.98 and complaint_p >= 0.95


def test_auto_and_language_on_the_corpus(verdicts):
    auto_right = sum(v.auto == row["auto"] for row, v in verdicts) / len(verdicts)
    lang_right = sum(v.language == row["language"] for row, v in verdicts) / len(verdicts)
    print(f"\nauto agreement {auto_right:.3f}, language agreement {lang_right:.3f}")
    assert auto_right >= 0.97 and lang_right >= 0.9
    # Human replies are never taken for machine ones (that would hide a person's words).
    assert not [row["id"] for row, v in verdicts if v.auto and not row["auto"]]


def test_scores_are_a_distribution(verdicts):
    for _, v in verdicts:
        assert set(v.scores) == set(INTENTS)
        assert abs(sum(v.scores.values()) - 1.0) < 0.01
        assert v.confidence == v.scores[v.intent] == max(v.scores.values())
        assert -1.0 <= v.sentiment <= 1.0


def test_explanation_never_carries_addresses_or_long_digits(verdicts):
    bad = re.compile(r"@|\d{4,}|\+\d")
    for _, v in verdicts:
        assert v.explanation and not bad.search(v.explanation), v.explanation
    v = classify("Re: x", "Please contact jane.doe@firm.example or +49 30 1234567, "
                 "ticket 123456789", {"X-Loop": "vacation@firm.example"})
    assert not bad.search(v.explanation), v.explanation


def test_header_only_auto_reply():
    v = classify("Re: December deals", "Thank you.", {"auto-submitted": "auto-replied"})
    assert v.auto and v.intent == "auto_reply_other"
    assert "Auto-Submitted" in v.explanation
    v = classify("Re: December deals", "I am away, back on Monday.",
                 {"X-AUTO-RESPONSE-SUPPRESS": "OOF, AutoReply"})
    assert v.auto and v.intent == "out_of_office"
    v = classify("Re: x", "", {"Precedence": "auto_reply"})
    assert v.auto and v.intent == "auto_reply_other"


def test_text_only_auto_reply():
    v = classify("Automatic reply: Sale", "I am out of the office until 3 March.", {})
    assert v.auto and v.intent == "out_of_office"
    v = classify("Abwesenheitsnotiz", "Ich bin bis 12.11. nicht im Büro.", {})
    assert v.auto and v.intent == "out_of_office" and v.language == "de"
    v = classify("[Auto-Reply] Re: Offer", "Our support hours are Mon-Fri 9-5.", {})
    assert v.auto and v.intent == "auto_reply_other"
    v = classify("Re: Offer", "We have received your request. Your ticket number is 4411.", {})
    assert v.auto and v.intent == "auto_reply_other"


def test_auto_submitted_no_and_precedence_bulk_alone_are_not_auto():
    for headers in ({"Auto-Submitted": "no"}, {"Precedence": "bulk"}, {"Precedence": "list"},
                    {"Precedence": "junk", "List-Id": "<a.lists.example>"}):
        v = classify("Re: News", "Great issue, thanks!", headers)
        assert not v.auto, headers
        assert v.intent == "other"
    v = classify("Re: News", "Please remove me from your mailing list.", {"Precedence": "bulk"})
    assert not v.auto and v.intent == "unsubscribe_request"


def test_quote_stripping_en_de_fr():
    en = ("Sounds good, send me the pricing.\n\nOn Mon, 1 Dec 2026 at 09:14, Acme "
          "<news@acme.example> wrote:\n> Sale!\n> Unsubscribe: https://acme.example/u")
    assert strip_quoted(en) == "Sounds good, send me the pricing."
    wrapped = ("Yes please.\n\nOn Mon, 1 Dec 2026 at 09:14, Acme News <news@acme.example>\n"
               "wrote:\n\nold")
    assert strip_quoted(wrapped) == "Yes please."
    de = ("Klingt gut.\n\nMit freundlichen Grüßen\nAnna Schmidt\n\nAm Mo., 1. Dez. 2026 um "
          "09:14 Uhr schrieb Acme <news@acme.example>:\n> Hier abmelden")
    assert strip_quoted(de) == "Klingt gut."
    fr = "Merci !\n\nLe lun. 1 déc. 2026 à 09:14, Acme <news@acme.example> a écrit :\n> x"
    assert strip_quoted(fr) == "Merci !"
    outlook = ("Danke.\n\nVon: Acme News <news@acme.example>\nGesendet: Montag, 1. Dezember "
               "2026 09:14\nAn: a@b.example\nBetreff: Angebote\n\nHier abmelden")
    assert strip_quoted(outlook) == "Danke."
    original = "Thanks\n\n-----Original Message-----\nFrom: x\nunsubscribe"
    assert strip_quoted(original) == "Thanks"
    fwd = "FYI\n\n---------- Forwarded message ---------\nFrom: Acme\nunsubscribe"
    assert strip_quoted(fwd) == "FYI"


def test_bottom_posting_and_inline_answers_are_kept():
    body = ("On Mon, 1 Dec 2026 at 09:14, Acme <news@acme.example> wrote:\n> Winter sale\n"
            "> Unsubscribe: https://acme.example/u\n\nNice, is the blue coat in stock?")
    assert strip_quoted(body) == "Nice, is the blue coat in stock?"
    inline = "> Do you want a demo?\nYes, Tuesday works.\n> Team size?\nAbout 20."
    assert strip_quoted(inline) == "Yes, Tuesday works.\nAbout 20."


def test_signature_before_an_outlook_quote_is_stripped():
    body = ("Remove me please.\n\nBest regards,\nJane Miller\nHead of Operations\n"
            "Northwind Ltd\n\nFrom: Acme News <news@acme.example>\nSent: Monday\n"
            "To: Jane\nSubject: Sale\n\n" + "Great deals inside.\n" * 30)
    assert strip_quoted(body) == "Remove me please."


def test_long_bodies_are_bounded():
    body = "Thanks,\n" * 60_000 + "Please remove me from your list."
    assert len(strip_quoted(body)) <= 50_000
    assert classify("Re: x", body, {}).intent in INTENTS


def test_auto_response_suppress_alone_yields_to_clear_human_words():
    headers = {"X-Auto-Response-Suppress": "All"}
    v = classify("RE: Sale", "Please remove me from your mailing list.", headers)
    assert not v.auto and v.intent == "unsubscribe_request"
    v = classify("Automatic reply: Sale", "Thanks for your message.", headers)
    assert v.auto


def test_signatures_and_mobile_footers_are_stripped():
    assert strip_quoted("Call me.\n\n-- \nJane\n+44 20 7946 0958") == "Call me."
    for footer in ("Sent from my iPhone", "Von meinem iPhone gesendet", "Envoyé de mon iPhone",
                   "Enviado desde mi iPhone", "Verzonden vanaf mijn iPhone",
                   "Get Outlook for Android"):
        assert strip_quoted(f"Ok.\n\n{footer}") == "Ok.", footer
    # A "thanks" in the middle of the text does not cut it.
    body = "Thanks!\nCould you send the invoice again? The first one was wrong."
    assert strip_quoted(body) == body


def test_quoted_unsubscribe_link_is_not_a_request():
    body = ("Great offer, thanks!\n\nOn Mon, 1 Dec 2026, Acme <news@acme.example> wrote:\n"
            "> Don't want these emails? Unsubscribe here. Remove me from the list: click.")
    v = classify("Re: Offer", body, {})
    assert v.intent != "unsubscribe_request"
    assert v.scores["unsubscribe_request"] < 0.1


def test_negations():
    assert classify("Re: x", "Please don't unsubscribe me, I love it.", {}).intent == "other"
    assert classify("Re: x", "Bitte melden Sie mich nicht ab.", {}).intent == "other"
    assert classify("Re: x", "Not interested, thanks.", {}).intent == "not_interested"
    assert classify("Re: x", "Interested, tell me more.", {}).intent == "interested"
    assert classify("Re: x", "Kein Interesse.", {}).intent == "not_interested"
    # A date alone is no out-of-office without a machine's headers or clear wording.
    assert classify("Re: x", "I will wait until Monday to decide.", {}).intent == "other"
    # Past tense: a person who *was* on holiday is not out of office.
    v = classify("Re: x", "I was on vacation last week and missed the sale, sad!", {})
    assert v.intent != "out_of_office" and not v.auto


def test_unsubscribe_confidence_high_only_on_clear_requests():
    assert classify("Re: x", "Please remove me from your mailing list.", {}).confidence >= 0.8
    assert classify("Re: x", "Bitte melden Sie mich vom Newsletter ab.", {}).confidence >= 0.8
    assert classify("Re: x", "How often do you send these?", {}).scores[
        "unsubscribe_request"] < 0.2
    # "check your spam folder" is no complaint
    v = classify("Re: x", "Your last mail landed in my spam folder, just so you know.", {})
    assert v.intent != "complaint"


def test_a_question_about_a_transaction_is_support():
    assert classify("Re: Your order has shipped", "Can I add a gift note?", {}).intent == (
        "support_question")
    assert classify("Re: Your order has shipped", "Thanks!", {}).intent == "other"


def test_complaint_is_urgent_and_negative():
    v = classify("Re: x", "I never signed up. Under GDPR delete my data or I call my lawyer.",
                 {})
    assert v.intent == "complaint" and v.urgent and v.sentiment < -0.2
    ooo = classify("Automatic reply", "I am out of the office. For urgent matters call Tom.",
                   {"Auto-Submitted": "auto-replied"})
    assert not ooo.urgent  # "urgent" in an out-of-office note is not the sender's urgency


def test_language_detection():
    assert detect_language("Ich bin bis Montag nicht im Büro und habe keinen Zugriff.") == "de"
    assert detect_language("I am out of the office until Monday.") == "en"
    assert detect_language("Je suis absente jusqu'au 3 janvier, merci.") == "fr"
    assert detect_language("Estoy fuera de la oficina hasta el lunes.") == "es"
    assert detect_language("Ik ben afwezig tot maandag, met vriendelijke groet.") == "nl"
    assert detect_language("12345") == ""
    # A bilingual note is in the language it opens with.
    v = classify("Automatische Antwort", "Ich bin bis zum 6. Januar nicht im Büro.\n\n"
                 "I am out of the office until 6 January.", {"Auto-Submitted": "auto-replied"})
    assert v.language == "de" and v.intent == "out_of_office"


def test_html_body():
    body = ("<html><body><p>Bitte melden Sie mich ab.</p><blockquote>Am Mo. schrieb Acme:"
            "<br>Hier abmelden</blockquote></body></html>")
    v = classify("AW: News", body, {})
    assert v.intent == "unsubscribe_request" and v.language == "de"
    assert "abmelden" not in html_to_text("<style>abmelden</style><p>x</p>")


def test_deterministic_and_bad_input_does_not_crash():
    a = classify("Re: x", "Sounds good", {"Auto-Submitted": "no"}, ts_ms=1)
    assert a == classify("Re: x", "Sounds good", {"Auto-Submitted": "no"}, ts_ms=2)
    for body in ("", "\x00\x01", "<<<>>>" * 100, "a" * 100_000, "<p" * 1000):
        v = classify("", body, {})
        assert v.intent in INTENTS
    v = classify("Re: x", "Great, thanks", {"X-Autoreply": None, "Auto-Submitted": ""})
    assert not v.auto


def test_speed_figure():
    rows = _corpus()
    start = time.perf_counter()
    for _ in range(3):
        for r in rows:
            classify(r["subject"], r["body"], r["headers"])
    rate = 3 * len(rows) / (time.perf_counter() - start)
    print(f"\nreply classification: {rate:,.0f} replies/s (one process)")


# --------------------------------------------------------------------------------------
# Hand-written holdout batches (issue 17)
# --------------------------------------------------------------------------------------


def _holdout(name: str) -> list[dict]:
    text = HOLDOUTS[name].read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _received(row: dict) -> dt.datetime:
    return dt.datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))


def _verdicts(name: str) -> list[tuple[dict, ReplyVerdict]]:
    out = []
    for row in _holdout(name):
        ts_ms = int(_received(row).timestamp() * 1000)
        out.append((row, classify(row["subject"], row["body"], row["headers"], ts_ms)))
    return out


@pytest.fixture(scope="module")
def holdout_verdicts() -> dict[str, list[tuple[dict, ReplyVerdict]]]:
    return {name: _verdicts(name) for name in HOLDOUTS}


def _precision_recall(
    pairs: list[tuple[dict, ReplyVerdict]],
) -> dict[str, tuple[int, float, float]]:
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for row, v in pairs:
        if v.intent == row["intent"]:
            tp[v.intent] += 1
        else:
            fp[v.intent] += 1
            fn[row["intent"]] += 1
    return {k: (tp[k] + fn[k], tp[k] / max(1, tp[k] + fp[k]), tp[k] / max(1, tp[k] + fn[k]))
            for k in INTENTS}


def test_holdout_batches_are_varied_and_well_formed():
    batches = {name: _holdout(name) for name in HOLDOUTS}
    a, b = batches["a"], batches["b"]
    assert len(a) >= 250 and len(b) >= 150 and sum(map(len, batches.values())) >= 850
    for rows in (a, b):
        assert set(r["intent"] for r in rows) == set(INTENTS)
        langs = Counter(r["language"] for r in rows)
        assert langs["en"] >= 80 and langs["de"] >= 50 and all(langs[x] >= 5 for x in
                                                              ("fr", "es", "nl"))
        assert {"plain", "quoted", "html"} <= set(r["variant"] for r in rows)
    corpus_keys = {(r["subject"], r["body"]) for r in _corpus()}
    for rows in batches.values():
        for r in rows:
            _received(r)  # every row has a parseable time
            assert (r["return_date"] is None) or r["intent"] == "out_of_office"
            assert r["auto"] == (r["intent"] in ("out_of_office", "auto_reply_other"))
            # The generator appends every holdout row to the training corpus, same format.
            assert (r["subject"], r["body"]) in corpus_keys


# Per batch and intent: (min precision, min recall). Fitted figures are 1.0 after the fixes;
# the slack lets one or two rows move, not a family of wording.
HOLDOUT_FLOORS = {"a": (0.93, 0.9), "b": (0.9, 0.88)}  # the smaller batches: (0.85, 0.85)


@pytest.mark.parametrize("name", INTENT_BATCHES)
def test_holdout_per_intent_precision_and_recall(holdout_verdicts, name):
    pairs = holdout_verdicts[name]
    floor_p, floor_r = HOLDOUT_FLOORS.get(name, (0.85, 0.85))
    table = _precision_recall(pairs)
    print(f"\nholdout {name}: {'intent':22} {'n':>4} {'precision':>9} {'recall':>7}")
    for intent, (n, p, r) in table.items():
        print(f"holdout {name}: {intent:22} {n:4d} {p:9.3f} {r:7.3f}")
        assert p >= floor_p and r >= floor_r, (name, intent, p, r)
    accuracy = sum(v.intent == row["intent"] for row, v in pairs) / len(pairs)
    print(f"holdout {name}: accuracy {accuracy:.3f} on {len(pairs)}")
    assert accuracy >= 0.95
    by_lang = {lang: [(row, v) for row, v in pairs if row["language"] == lang]
               for lang in ("en", "de")}
    for lang, rows in by_lang.items():
        assert sum(v.intent == row["intent"] for row, v in rows) / len(rows) >= 0.95, lang


def test_holdout_near_misses_are_not_suppressed(holdout_verdicts):
    """Batch C: replies that mention unsubscribing, spam or removal but ask for something
    else (first score before its fixes: 3 of 11 confident unsubscribes were wrong)."""
    pairs = holdout_verdicts["c"]
    wrong = [(row["body"], v.intent, v.confidence) for row, v in pairs
             if v.intent in SUPPRESSING and row["intent"] != v.intent]
    assert not wrong
    accuracy = sum(v.intent == row["intent"] for row, v in pairs) / len(pairs)
    assert accuracy >= 0.9


@pytest.mark.parametrize("name", INTENT_BATCHES)
def test_holdout_out_of_office_and_return_dates(holdout_verdicts, name):
    pairs = [(row, v) for row, v in holdout_verdicts[name] if row["intent"] == "out_of_office"]
    detected = sum(v.intent == "out_of_office" and v.auto for _, v in pairs) / len(pairs)
    dated = [(row, v) for row, v in pairs if row["return_date"]]
    exact = 0
    for row, v in dated:
        body = html_to_text(row["body"]) if row["variant"] == "html" else row["body"]
        got = return_date(strip_quoted(body), _received(row), v.language)
        exact += got is not None and got.isoformat() == row["return_date"]
    print(f"\nholdout {name}: out-of-office detected {detected:.3f} of {len(pairs)}, "
          f"exact return date {exact}/{len(dated)}")
    assert detected >= 0.98
    # D: "I'll reply once I land on 23 June", F: "will respond tomorrow" give no date; H: "out
    # Thursday and Friday (Dec 3-4), will respond on Monday" gives the Saturday.
    assert exact / len(dated) >= 0.85
    # No human reply is taken for a machine's.
    assert not [row["id"] for row, v in holdout_verdicts[name] if v.auto and not row["auto"]]


def test_suppression_precision_at_the_recommended_threshold(holdout_verdicts, verdicts):
    """Permanent suppression only at confidence >= SUPPRESS_THRESHOLD: measured precision on
    the corpus and all holdout batches (first scores before fixes: B 20/20 and 12/12, C 8/11
    and 2/3, D 7/7 and 7/7, E 9/9 and 5/5, F 6/6 and 5/5, G 6/6 and 5/5, H 9/9 and 3/3, I 7/7
    and 3/3, J 11/11 and 3/3 — the near-miss batch is why the threshold alone is not
    enough)."""
    sets = {"corpus": verdicts, **holdout_verdicts}
    for intent in SUPPRESSING:
        chosen = [(row, v) for pairs in sets.values() for row, v in pairs
                  if v.intent == intent and v.confidence >= SUPPRESS_THRESHOLD]
        right = sum(row["intent"] == intent for row, _ in chosen)
        total = sum(row["intent"] == intent for pairs in sets.values() for row, _ in pairs)
        print(f"\n{intent} at >= {SUPPRESS_THRESHOLD}: precision {right}/{len(chosen)}, "
              f"recall {right}/{total}")
        assert right / len(chosen) >= 0.99
        assert right / total >= 0.85  # the threshold still lets most clear requests through


def test_unambiguous_requests_are_confident_and_mixed_ones_are_not():
    for body in ("Please remove me from your mailing list.", "unsubscribe",
                 "Bitte aus dem Verteiler nehmen.", "STOP", "Merci de me désinscrire.",
                 "This is spam. I never signed up.", "Ich verlange Auskunft nach Art. 15 DSGVO."):
        v = classify("Re: News", body, {})
        assert v.intent in SUPPRESSING and v.confidence >= SUPPRESS_THRESHOLD, body
    for body in ("Remove me from the list, but first send the invoice for order 4471.",
                 "Take me off the list and talk to my colleague jane@firm.example instead.",
                 "Is this spam or a real offer?", "Your mail landed in my spam folder.",
                 "Is this a real offer or a scam?", "Unsubscribing from other lists, not yours!",
                 "Remove me from this thread and talk to Dana, she owns the budget.",
                 "I was going to unsubscribe but this issue changed my mind.",
                 "Surtout ne me désinscrivez pas !", "No me den de baja, por favor."):
        v = classify("Re: News", body, {})
        assert v.confidence < SUPPRESS_THRESHOLD or v.intent not in SUPPRESSING, body


@pytest.mark.parametrize("body,intent", [
    # English
    ("sounds good, can we schedule a call next week?", "interested"),
    ("Tuesday 2pm works for me. Send an invite.", "interested"),
    ("send me pricing for 50 seats", "interested"),
    ("not interested at this time", "not_interested"),
    ("We already use Datadog for this, thanks.", "not_interested"),
    ("We've decided to stick with our current setup.", "not_interested"),
    ("I'm not the right person - talk to my colleague jane@tilson.example", "wrong_person"),
    ("I left the company in June. Please contact info@tilson.example.", "wrong_person"),
    ("my order 12345 hasn't arrived yet", "support_question"),
    ("can't log in. reset link doesn't work", "support_question"),
    ("Please cancel my subscription, I no longer need the service.", "support_question"),
    ("Delete my data. All of it. Now.", "complaint"),
    ("Thanks, glad to be here", "other"),
    # German
    ("Klingt interessant, können Sie mir ein Angebot schicken?", "interested"),
    ("Passt Ihnen Donnerstag um 14 Uhr für ein kurzes Telefonat?", "interested"),
    ("Danke, wir sind mit unserem jetzigen Anbieter zufrieden.", "not_interested"),
    ("Das Budget ist für dieses Jahr ausgeschöpft.", "not_interested"),
    ("Dafür bin ich der falsche Ansprechpartner, bitte schreiben Sie an it@x.example.",
     "wrong_person"),
    ("Ich bin seit März nicht mehr im Unternehmen. Bitte an die Zentrale wenden.",
     "wrong_person"),
    ("Meine Bestellung 40021 ist immer noch nicht da. Wo bleibt sie?", "support_question"),
    ("Die neue Version lässt sich auf meinem Android nicht installieren.", "support_question"),
    ("Ich verlange Auskunft nach Art. 15 DSGVO über meine Daten.", "complaint"),
    ("Bitte keine Newsletter mehr an diese Adresse schicken.", "unsubscribe_request"),
    ("Gerne geschehen.", "other"),
    ("Bitte NICHT abmelden, ich lese das gerne!", "other"),
])
def test_english_and_german_human_intents(body, intent):
    assert classify("Re: News", body, {}).intent == intent


def test_first_person_leaving_is_a_person_third_person_is_a_machine():
    v = classify("Re: x", "I'm no longer at Tilson, please update your contact to m@n.example.", {})
    assert v.intent == "wrong_person" and not v.auto
    v = classify("Re: x", "Jordan Blake is no longer with Halden Ltd. This mailbox will be "
                 "deactivated.", {"Auto-Submitted": "auto-replied"})
    assert v.intent == "auto_reply_other" and v.auto
    v = classify("Re: x", "Frau Roth ist nicht mehr bei uns beschäftigt. Ihre Nachricht wurde "
                 "nicht weitergeleitet.", {})
    assert v.intent == "auto_reply_other"


def test_rules_that_overlap_count_once_and_inner_rules_are_seen():
    # "no longer need" sits in two not_interested lexicons: it counts once, so the support
    # request around it ("cancel my subscription", found inside another rule's match) wins.
    v = classify("Re: x", "Please cancel my subscription, I no longer need the service.", {})
    assert v.intent == "support_question"
    v = classify("Re: x", "How do I unsubscribe from these? The link at the bottom doesn't "
                 "work.", {})
    assert v.intent == "unsubscribe_request"


def test_a_machine_note_with_a_return_date_is_out_of_office():
    # No absence rule knows "gone to the mountains"; the extractor's "available again from
    # <day>" does.
    body = "Gone to the mountains, available again from 14 December."
    headers = {"Auto-Submitted": "auto-replied"}
    ts = int(dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC).timestamp() * 1000)
    assert classify("Re: x", body, headers, ts).intent == "out_of_office"
    assert classify("Re: x", body, headers).intent == "auto_reply_other"  # no time: no date
    # A person's reply with a date is still a person's.
    assert not classify("Re: x", "Let's talk when I'm back on 14 December.", {}, ts).auto


def test_corpus_speed_figure_after_the_wider_rules():
    rows = _corpus()
    start = time.perf_counter()
    for r in rows:
        classify(r["subject"], r["body"], r["headers"])
    rate = len(rows) / (time.perf_counter() - start)
    print(f"\nreply classification with the wider rules: {rate:,.0f} replies/s")


def test_addresses_and_links_are_not_read_as_words():
    # "membership@..." once made a sick-leave note a support question.
    v = classify("Re: x", "I'm on long-term sick leave. Please contact membership@museum.example.",
                 {})
    assert v.intent == "out_of_office"
    v = classify("Re: x", "Thanks! More at https://example.org/pricing-and-demo-booking", {})
    assert v.intent == "other"


def test_typos_in_key_words_are_mended_but_real_words_stay():
    assert classify("Re: x", "pls remve me from ur list", {}).intent == "unsubscribe_request"
    assert classify("Re: x", "unsubscibe", {}).intent == "unsubscribe_request"
    assert classify("Re: x", "not intersted thanks", {}).intent == "not_interested"
    assert classify("Re: x", "i'm out of the ofice till monday", {"X-Autoreply": "yes"}).intent == (
        "out_of_office")
    # Inflections and near words are words: "I unsubscribed" is no request, "remote" no remove.
    v = classify("Re: x", "I unsubscribed last week and still get these!", {})
    assert v.intent == "complaint"
    assert classify("Re: x", "We work remote me and my team, nice tips.", {}).intent == "other"


def test_android_attribution_with_the_date_after_the_verb_is_a_quote():
    body = ("Thanks!\n\nBrightwave <a@b.example> schrieb am Di., 1. Dez. 2026, 08:02:\n"
            "> Abmelden\nNewsletter abbestellen")
    assert strip_quoted(body) == "Thanks!"
    body = "Sure.\n\nJane <j@x.example> wrote on Tue, 1 Dec 2026, 08:02:\nunsubscribe"
    assert strip_quoted(body) == "Sure."
