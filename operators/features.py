"""Features known at the moment a message is delivered, and the history behind them.

Everything here is computed from events *before* the delivery (the stream is
in event-time order), so a score can never see its own outcome.

The features come from two places, because the job keeps them in two places:
the recipient's own history (`HistoryBook`, eight numbers per recipient: time-
decayed counts and two timestamps, ~200 bytes with the dict entry; it lives in
the recipient's shard) and the campaign's running rates (`CampaignRates`, three
counters per campaign; they live with the models, which see every label).
`features` puts them together with the message's context. High-cardinality
categoricals (sender, campaign) are hashed into a fixed number of buckets, so
the models' weight vectors stay bounded however many campaigns come and go.

>>> h = HistoryBook()
>>> h.delivered("r", 0)
>>> h.engaged("r", 3_600_000)
>>> x = features(h.numbers("r", 86_400_000), "gmail.com", "news.example", "c1", "B",
...              86_400_000, CampaignRates())
>>> x["prov=gmail.com"], x["never_engaged"], round(x["recency"], 3), x["var=B"]
(1.0, 0.0, 0.454, 1.0)
"""

from __future__ import annotations

import math
import zlib

from operators.send_time import hour_of_week

_HOUR_MS = 3_600_000
_DAY_MS = 24 * _HOUR_MS
#: Counts decay with these half-lives: a week for habits, a day for fatigue.
_WEEK_HALF_LIFE_MS = 7 * _DAY_MS
_DAY_HALF_LIFE_MS = _DAY_MS

# history fields
(_T, _DELIV_7D, _DELIV_1D, _ENGAGED, _HUMAN_OPENS, _MACHINE_OPENS, _LAST_ENGAGED,
 _LAST_DELIVERED) = range(8)


def bucket(prefix: str, value: str, buckets: int = 1024) -> str:
    """Hashed categorical: stable across processes (crc32, not Python's salted hash)."""
    return f"{prefix}#{zlib.crc32(value.encode()) % buckets}"


class HistoryBook:
    """Per-recipient engagement history (what a recipient shard keeps)."""

    def __init__(self) -> None:
        self.recipients: dict[str, list[float]] = {}

    def _get(self, recipient: str, ts_ms: int) -> list[float]:
        h = self.recipients.get(recipient)
        if h is None:
            h = self.recipients[recipient] = [ts_ms, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0]
        elif ts_ms > h[_T]:  # decay lazily to the newest time seen
            dt = ts_ms - h[_T]
            week = 0.5 ** (dt / _WEEK_HALF_LIFE_MS)
            h[_DELIV_7D] *= week
            h[_ENGAGED] *= week
            h[_HUMAN_OPENS] *= week
            h[_MACHINE_OPENS] *= week
            h[_DELIV_1D] *= 0.5 ** (dt / _DAY_HALF_LIFE_MS)
            h[_T] = ts_ms
        return h

    def delivered(self, recipient: str, ts_ms: int) -> None:
        h = self._get(recipient, ts_ms)
        h[_DELIV_7D] += 1
        h[_DELIV_1D] += 1
        h[_LAST_DELIVERED] = ts_ms

    def engaged(self, recipient: str, ts_ms: int) -> None:
        """A genuine engagement (human click, reply, conversion)."""
        h = self._get(recipient, ts_ms)
        h[_ENGAGED] += 1
        h[_LAST_ENGAGED] = ts_ms

    def opened(self, recipient: str, ts_ms: int, human: bool) -> None:
        h = self._get(recipient, ts_ms)
        h[_HUMAN_OPENS if human else _MACHINE_OPENS] += 1

    def ever_delivered(self, recipient: str) -> bool:
        h = self.recipients.get(recipient)
        return h is not None and h[_LAST_DELIVERED] >= 0

    def forget(self, recipient: str) -> int:
        """Drop one recipient's history (erasure).

        >>> book = HistoryBook()
        >>> book.delivered("r", 1_000)
        >>> book.forget("r"), book.forget("r"), "r" in book.recipients
        (1, 0, False)
        """
        return 1 if self.recipients.pop(recipient, None) is not None else 0

    def numbers(self, recipient: str, ts_ms: int) -> tuple[float, ...]:
        """The recipient's features at `ts_ms`, in `RECIPIENT_FEATURES` order."""
        h = self._get(recipient, ts_ms)
        opens = h[_HUMAN_OPENS] + h[_MACHINE_OPENS]
        return (
            math.log1p(h[_DELIV_7D]) / 3.0,
            math.log1p(h[_DELIV_1D]) / 2.0,
            math.log1p(h[_ENGAGED]) / 2.0,
            (h[_ENGAGED] + 0.1) / (h[_DELIV_7D] + 1.0),
            h[_MACHINE_OPENS] / opens if opens else 0.0,
            1.0 if h[_LAST_ENGAGED] < 0 else 0.0,
            # log hours since the last genuine engagement, capped at ~6 weeks
            (min(math.log1p((ts_ms - h[_LAST_ENGAGED]) / _HOUR_MS), 7.0) / 7.0
             if h[_LAST_ENGAGED] >= 0 else 1.0),
        )

    def approx_bytes(self) -> int:
        import sys

        per = sys.getsizeof([0.0] * 8) + 8 * 24 + 90 + 30  # list, floats, key str, dict slot
        return len(self.recipients) * per


#: What `HistoryBook.numbers` returns, in order.
RECIPIENT_FEATURES = ("freq_7d", "fatigue_1d", "engaged_7d", "engagement_rate",
                      "machine_open_share", "never_engaged", "recency")


class CampaignRates:
    """Per-campaign running engagement and unsubscribe rates, from matured labels."""

    def __init__(self) -> None:
        self.campaigns: dict[str, list[int]] = {}  # campaign -> [resolved, engaged, unsub]

    def outcome(self, campaign: str, engaged: bool, unsubscribed: bool) -> None:
        c = self.campaigns.get(campaign)
        if c is None:
            c = self.campaigns[campaign] = [0, 0, 0]
        c[0] += 1
        c[1] += engaged
        c[2] += unsubscribed

    def rates(self, campaign: str) -> tuple[float, float]:
        """(engagement rate, unsubscribe rate), shrunk towards zero while labels are few."""
        c = self.campaigns.get(campaign, (0, 0, 0))
        return (c[1] + 0.5) / (c[0] + 10.0), (c[2] + 0.01) / (c[0] + 10.0)


def features(recipient: tuple[float, ...], provider: str, sender: str, campaign: str,
             variant: str, ts_ms: int, campaigns: CampaignRates) -> dict[str, float]:
    """A delivery's features: its context, the recipient's numbers, the campaign's rates."""
    how = hour_of_week(ts_ms)
    rate, unsub_rate = campaigns.rates(campaign)
    x = {
        "bias": 1.0,
        "prov=" + provider: 1.0,
        bucket("sender", sender): 1.0,
        bucket("camp", campaign): 1.0,
        f"hod={how % 24}": 1.0,
        f"dow={how // 24}": 1.0,
    }
    x.update(zip(RECIPIENT_FEATURES, recipient, strict=True))
    x["campaign_rate"] = rate
    x["campaign_unsub_rate"] = unsub_rate
    if variant:
        x["var=" + variant] = 1.0
    return x
