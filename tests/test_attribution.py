"""operators/attribution.py: conversions credited to the messages that touched the recipient."""

from __future__ import annotations

import pickle
import random

import pytest

from operators.attribution import MODELS, AttributionBook, Credit, Touch

DAY = 86_400_000
SHOP, OTHER = "shop.example", "news.other.example"
ANN, BOB = "a" * 32, "b" * 32


def by_model(credits: list[Credit]) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = {m: [] for m in MODELS}
    for c in credits:
        out[c.model].append((c.touch.message_id, c.credit))
    return out


def three_touches(book: AttributionBook, sender: str = SHOP, recipient: str = ANN) -> None:
    book.touch(sender, recipient, Touch(0, "m0", "spring", "welcome"))
    book.touch(sender, recipient, Touch(2 * DAY, "m2", "spring", ""))
    book.touch(sender, recipient, Touch(6 * DAY, "m6", "summer", "winback"))


def test_hand_computed_credits_for_three_touches():
    book = AttributionBook(window_s=7 * 86400, half_life_s=86400)
    three_touches(book)
    credits = by_model(book.credits(SHOP, ANN, 6 * DAY + DAY // 2))

    assert credits["first_touch"] == [("m0", 1.0)]
    assert credits["last_touch"] == [("m6", 1.0)]
    # 1/3 = 0.3333333… → 0.333333 twice; the latest takes 1 - 0.666666 = 0.333334
    assert credits["linear"] == [("m0", 0.333333), ("m2", 0.333333), ("m6", 0.333334)]
    # ages 6.5, 4.5, 0.5 days → weights 2^-6.5 : 2^-4.5 : 2^-0.5 = 1 : 4 : 64 (sum 69)
    # 1/69 = 0.0144927… → 0.014493; 4/69 = 0.0579710… → 0.057971;
    # the latest takes 1 - 0.014493 - 0.057971 = 0.927536 (64/69 = 0.9275362…)
    assert credits["time_decay"] == [("m0", 0.014493), ("m2", 0.057971), ("m6", 0.927536)]
    # the Touch comes back whole
    first = book.credits(SHOP, ANN, 6 * DAY + DAY // 2)[0]
    assert first == Credit("first_touch", Touch(0, "m0", "spring", "welcome"), 1.0)


def test_touch_older_than_the_window_is_excluded():
    book = AttributionBook()
    three_touches(book)
    # conversion at day 7.5: the day-0 touch is 7.5 days old, outside the 7-day window
    credits = by_model(book.credits(SHOP, ANN, 7 * DAY + DAY // 2))
    assert credits["first_touch"] == [("m2", 1.0)]
    assert [m for m, _ in credits["linear"]] == ["m2", "m6"]
    # the window's edge is included: exactly 7 days old still counts
    assert by_model(book.credits(SHOP, ANN, 7 * DAY))["first_touch"] == [("m0", 1.0)]


def test_touch_after_the_conversion_is_excluded_even_if_it_arrived_first():
    book = AttributionBook()
    book.touch(SHOP, ANN, Touch(5 * DAY, "later", "c", ""))  # arrives first, delivered later
    book.touch(SHOP, ANN, Touch(1 * DAY, "earlier", "c", ""))
    credits = by_model(book.credits(SHOP, ANN, 3 * DAY))
    assert credits["last_touch"] == [("earlier", 1.0)]
    assert credits["linear"] == [("earlier", 1.0)]
    assert credits["time_decay"] == [("earlier", 1.0)]
    # delivered in the same millisecond as the conversion: counts
    assert by_model(book.credits(SHOP, ANN, 5 * DAY))["last_touch"] == [("later", 1.0)]


def test_only_the_converting_senders_messages_earn_credit():
    book = AttributionBook()
    three_touches(book)
    book.touch(OTHER, ANN, Touch(6 * DAY + 1000, "rival", "promo", "rival-flow"))
    credits = book.credits(SHOP, ANN, 6 * DAY + DAY // 2)
    assert "rival" not in {c.touch.message_id for c in credits}
    assert by_model(book.credits(OTHER, ANN, 6 * DAY + DAY // 2))["linear"] == [("rival", 1.0)]
    assert "rival-flow" not in book.flows_touched(SHOP, ANN, 6 * DAY + DAY // 2)


def test_no_touches_give_no_credits():
    book = AttributionBook()
    assert book.credits(SHOP, ANN, DAY) == []
    three_touches(book)
    assert book.credits(SHOP, BOB, DAY) == []  # another recipient
    assert book.credits(SHOP, ANN, -1) == []  # before every touch
    assert book.credits(SHOP, ANN, 20 * DAY) == []  # after the window of every touch
    assert book.flows_touched(SHOP, BOB, DAY) == []


def test_flows_touched_are_distinct_non_empty_and_sorted():
    book = AttributionBook()
    three_touches(book)
    book.touch(SHOP, ANN, Touch(6 * DAY + 1, "m6b", "summer", "winback"))
    book.touch(SHOP, ANN, Touch(3 * DAY, "m3", "cart", "cart_abandon"))
    assert book.flows_touched(SHOP, ANN, 6 * DAY + DAY // 2) == [
        "cart_abandon", "welcome", "winback"]
    # day 7.5: the welcome touch (day 0) has left the window
    assert book.flows_touched(SHOP, ANN, 7 * DAY + DAY // 2) == ["cart_abandon", "winback"]
    # day 2.5: the later touches are in the future
    assert book.flows_touched(SHOP, ANN, 2 * DAY + DAY // 2) == ["welcome"]


def test_max_touches_keeps_the_latest():
    book = AttributionBook(max_touches=3)
    for i in range(5):
        book.touch(SHOP, ANN, Touch(i * 1000, f"m{i}", "c", ""))
    book.touch(SHOP, ANN, Touch(500, "stale", "c", ""))  # older than all kept: gone at once
    credits = by_model(book.credits(SHOP, ANN, DAY))
    assert [m for m, _ in credits["linear"]] == ["m2", "m3", "m4"]
    assert book.capped == 3


def test_ties_in_time_keep_arrival_order():
    book = AttributionBook()
    book.touch(SHOP, ANN, Touch(1000, "second-delivered", "c", ""))
    book.touch(SHOP, ANN, Touch(5000, "z", "c", ""))
    # arrives after "z" but delivered in the same ms as the first: goes after it, before "z"
    book.touch(SHOP, ANN, Touch(1000, "a-later-arrival", "c", ""))
    credits = by_model(book.credits(SHOP, ANN, 1000))
    assert credits["first_touch"] == [("second-delivered", 1.0)]
    assert credits["last_touch"] == [("a-later-arrival", 1.0)]
    assert [m for m, _ in by_model(book.credits(SHOP, ANN, 5000))["linear"]] == [
        "second-delivered", "a-later-arrival", "z"]


def test_the_same_delivery_seen_twice_counts_once():
    book = AttributionBook()
    three_touches(book)
    book.touch(SHOP, ANN, Touch(6 * DAY, "m6", "summer", "winback"))  # replayed at once
    book.touch(SHOP, ANN, Touch(2 * DAY, "m2", "spring", ""))  # replayed later, out of order
    book.touch(SHOP, BOB, Touch(2 * DAY, "m2", "spring", ""))  # another recipient: a touch
    linear = by_model(book.credits(SHOP, ANN, 6 * DAY))["linear"]
    assert linear == [("m0", 0.333333), ("m2", 0.333333), ("m6", 0.333334)]
    assert book.duplicates == 2


def test_expire_drops_old_touches_and_empty_recipients():
    book = AttributionBook()
    three_touches(book, recipient=ANN)
    book.touch(SHOP, BOB, Touch(1 * DAY, "b1", "c", ""))
    book.touch(OTHER, BOB, Touch(0, "o0", "c", ""))
    assert len(book) == 3
    # watermark day 8.5 → horizon day 1.5: drops ANN's day-0, BOB's day-1, OTHER's day-0
    assert book.expire(8 * DAY + DAY // 2) == 3
    assert len(book) == 1
    assert [m for m, _ in by_model(book.credits(SHOP, ANN, 8 * DAY))["linear"]] == ["m2", "m6"]
    assert book.expire(8 * DAY + DAY // 2) == 0  # nothing more, watermark did not move
    # a touch older than the horizon arrives late: counted, not stored
    book.touch(SHOP, BOB, Touch(DAY, "late", "c", ""))
    assert book.late == 1 and len(book) == 1
    assert book.expire(30 * DAY) == 2 and len(book) == 0


def test_expire_prunes_the_campaign_table():
    book = AttributionBook(max_touches=5)
    for i in range(1000):
        book.touch(SHOP, f"r{i}", Touch(i, f"m{i}", f"campaign-{i}", ""))
    book.touch(SHOP, ANN, Touch(30 * DAY, "keep", "kept", "flow"))
    small = book.approx_bytes()
    assert book.expire(30 * DAY) == 1000
    assert book.approx_bytes() < small / 10
    assert book.credits(SHOP, ANN, 30 * DAY)[0].touch == Touch(30 * DAY, "keep", "kept", "flow")


def test_campaign_and_flow_strings_are_shared_between_touches():
    book = AttributionBook()
    for i in range(3):
        book.touch(SHOP, f"r{i}", Touch(i, f"m{i}", "".join(["spr", "ing"]), "welcome"))
    touches = [book.credits(SHOP, f"r{i}", DAY)[0].touch for i in range(3)]
    assert touches[0].campaign_id is touches[1].campaign_id is touches[2].campaign_id


def test_snapshot_restore_round_trip():
    book = AttributionBook(window_s=3 * 86400, half_life_s=3600, max_touches=4)
    three_touches(book)
    book.touch(SHOP, BOB, Touch(DAY, "b1", "c", "f"))
    book.expire(DAY)
    book.touch(SHOP, BOB, Touch(DAY, "b1", "c", "f"))  # a duplicate, counted
    state = book.snapshot()
    book.touch(SHOP, ANN, Touch(6 * DAY + 1, "after-snapshot", "c", ""))  # the snapshot is a copy

    restored = AttributionBook.restore(pickle.loads(pickle.dumps(state)))
    assert (restored.window_s, restored.half_life_s, restored.max_touches) == (3 * 86400, 3600, 4)
    assert (restored.capped, restored.duplicates, restored.late) == (0, 1, 0)
    assert len(restored) == 2
    at = 6 * DAY + DAY // 2
    assert "after-snapshot" not in {c.touch.message_id for c in restored.credits(SHOP, ANN, at)}
    again = AttributionBook.restore(state)
    again.touch(SHOP, ANN, Touch(6 * DAY + 1, "after-snapshot", "c", ""))
    assert again.credits(SHOP, ANN, at) == book.credits(SHOP, ANN, at)
    assert again.flows_touched(SHOP, BOB, DAY) == ["f"]
    restored.touch(SHOP, ANN, Touch(-5 * DAY, "old", "c", ""))  # the expiry horizon survives
    assert restored.late == 1


def random_calls(seed: int) -> list[tuple]:
    rnd = random.Random(seed)
    calls: list[tuple] = []
    for i in range(2000):
        sender = rnd.choice((SHOP, OTHER))
        recipient = f"r{rnd.randrange(40)}"
        ts = i * 600_000 + rnd.randrange(-DAY, DAY)  # out of order by up to a day
        if rnd.random() < 0.8:
            calls.append(("touch", sender, recipient,
                          Touch(ts, f"m{rnd.randrange(1500)}", f"c{rnd.randrange(5)}",
                                rnd.choice(("", "welcome", "winback")))))
        elif rnd.random() < 0.9:
            calls.append(("credits", sender, recipient, ts))
        else:
            calls.append(("expire", ts))
    return calls


def play(calls: list[tuple], book: AttributionBook) -> list:
    out = []
    for call in calls:
        if call[0] == "touch":
            book.touch(*call[1:])
        elif call[0] == "credits":
            out.append(book.credits(*call[1:]))
            out.append(book.flows_touched(*call[1:]))
        else:
            out.append(book.expire(call[1]))
    return out


def test_same_calls_give_the_same_results():
    calls = random_calls(7)
    first = play(calls, AttributionBook(max_touches=10))
    assert first == play(calls, AttributionBook(max_touches=10))
    assert sum(isinstance(out, list) and out != [] and isinstance(out[0], Credit)
               for out in first) > 50  # it did credit
    # a restored book continues exactly like the original
    half = len(calls) // 2
    original = AttributionBook(max_touches=10)
    play(calls[:half], original)
    restored = AttributionBook.restore(pickle.loads(pickle.dumps(original.snapshot())))
    assert play(calls[half:], restored) == play(calls[half:], original)


@pytest.mark.parametrize("half_life_s", [60, 3600, 86400, 30 * 86400])
def test_credits_sum_to_one_per_model(half_life_s):
    book = AttributionBook(half_life_s=half_life_s)
    rnd = random.Random(half_life_s)
    for n in range(1, 51):
        recipient = f"r{n}"
        for i in range(n):
            book.touch(SHOP, recipient, Touch(rnd.randrange(7 * DAY), f"m{i}", "c", ""))
        credits = book.credits(SHOP, recipient, 7 * DAY)
        for model in MODELS:
            shares = [c.credit for c in credits if c.model == model]
            assert abs(sum(shares) - 1.0) < 1e-9
            assert all(0.0 <= s <= 1.0 and round(s, 6) == s for s in shares)
            assert len(shares) == (1 if model in ("first_touch", "last_touch") else n)
        assert [c.model for c in credits] == sorted((c.model for c in credits), key=MODELS.index)


def test_settings_are_checked():
    with pytest.raises(ValueError):
        AttributionBook(window_s=0)
    with pytest.raises(ValueError):
        AttributionBook(half_life_s=-1)
    with pytest.raises(ValueError):
        AttributionBook(max_touches=0)


def test_expiry_queue_drops_exactly_what_is_older_than_the_horizon():
    """Out-of-order touches, erasures, many expiries: after each, the book holds exactly
    the touches at or after the horizon, and the queue only minutes not yet due."""
    rnd = random.Random(11)
    book = AttributionBook(window_s=3600, max_touches=1000)
    kept: dict[tuple[str, str], set[tuple[int, str]]] = {}
    horizon = None
    for i in range(3000):
        ts = i * 20_000 + rnd.randrange(-600_000, 600_000)
        sender, recipient = rnd.choice((SHOP, OTHER)), f"r{rnd.randrange(60)}"
        if rnd.random() < 0.01:
            book.forget(recipient)
            for key in [k for k in kept if k[1] == recipient]:
                del kept[key]
        book.touch(sender, recipient, Touch(ts, f"m{i}", "c", ""))
        if horizon is None or ts >= horizon:
            kept.setdefault((sender, recipient), set()).add((ts, f"m{i}"))
        if i % 50 == 49:
            dropped = book.expire(i * 20_000)
            horizon = i * 20_000 - 3_600_000
            before = sum(len(v) for v in kept.values())
            kept = {k: {t for t in v if t[0] >= horizon} for k, v in kept.items()}
            kept = {k: v for k, v in kept.items() if v}
            assert dropped == before - sum(len(v) for v in kept.values())
            held = {(s, r): {(ts, m) for ts, m, _ in history}
                    for s, recipients in book._senders.items()
                    for r, history in recipients.items()}
            assert held == kept
            assert min(book._queue_minutes) >= horizon // 60_000  # nothing due is left
    assert len(book._queue) <= 3600 // 60 + 12  # the window's minutes, not the stream's


def test_forget_leaves_no_mention_in_the_expiry_queue():
    book = AttributionBook(max_touches=2)
    for i in range(5):  # three of ANN's touches are capped: queued, but not in the history
        book.touch(SHOP, ANN, Touch(i * 60_000, f"m{i}", "c", ""))
        book.touch(SHOP, BOB, Touch(i * 60_000, f"b{i}", "c", ""))
    assert book.forget(ANN) == 2
    assert ANN.encode() not in pickle.dumps(book)
    assert book.expire(30 * DAY) == 2  # BOB's two, found through the queue
