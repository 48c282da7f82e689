"""Features known at the moment a message is delivered, and the history behind them.

Everything here is computed from events *before* the delivery (the stream is
in event-time order), so a score can never see its own outcome.

The features come from two places, because the job keeps them in two places:
the recipient's own history (`HistoryBook`, thirteen numbers per recipient:
time-decayed counts, two timestamps, matured label counts, an hour vector;
~590 bytes with the dict entry, plus ~180 while a delivery's label window is
open; it lives in the recipient's shard and travels as the twelve
`RECIPIENT_FEATURES` in each `Delivered` fact) and the campaign's and sender's
running rates (`CampaignRates`; they live with the models, which see every
label). `features` puts them together with the message's context and turns the
matured counts into an empirical-Bayes rate. High-cardinality
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
#: Counts decay with these half-lives: a week for habits, a day for fatigue, a month for
#: the matured labels (a propensity changes slowly; the count is the evidence).
_WEEK_HALF_LIFE_MS = 7 * _DAY_MS
_DAY_HALF_LIFE_MS = _DAY_MS
_MONTH_HALF_LIFE_MS = 30 * _DAY_MS
#: A human open this soon after the latest delivery is a "quick" one (notifications on).
_QUICK_OPEN_MS = 15 * 60_000
_TAU = 2 * math.pi / 24

# history fields
(_T, _DELIV_7D, _DELIV_1D, _ENGAGED, _HUMAN_OPENS, _MACHINE_OPENS, _LAST_ENGAGED,
 _LAST_DELIVERED, _MATURED, _MATURED_POS, _HOUR_X, _HOUR_Y, _QUICK_OPENS) = range(13)
_FIELDS = 13


def bucket(prefix: str, value: str, buckets: int = 1024) -> str:
    """Hashed categorical: stable across processes (crc32, not Python's salted hash)."""
    return f"{prefix}#{zlib.crc32(value.encode()) % buckets}"


class HistoryBook:
    """Per-recipient engagement history (what a recipient shard keeps).

    Besides time-decayed counts it keeps the recipient's *matured labels*, the same
    engagement label the models learn (a genuine engagement with the message within
    the label window): each delivery waits in a short per-recipient list (its due
    time, message key, engaged?) until its window closes in event time, then counts
    as a matured delivery and, if engaged, a matured positive. The shard sees both
    the deliveries and the engagements, so nothing flows back from the models.
    Machine opens and bot clicks never reach `engaged` (the caller passes only
    genuine ones) and `opened` keeps human and machine opens apart.

    >>> h = HistoryBook(label_window_ms=3_600_000)
    >>> h.delivered("r", 0, key=1)
    >>> h.engaged("r", 60_000, key=1)           # within the window: a positive
    >>> h.delivered("r", 7_200_000, key=2)      # no engagement: a negative once it matures
    >>> n = dict(zip(RECIPIENT_FEATURES, h.numbers("r", 7_200_001)))
    >>> round(n["matured"], 2), round(n["matured_pos"], 2)   # m1 matured, m2 still open
    (1.0, 1.0)
    >>> n = dict(zip(RECIPIENT_FEATURES, h.numbers("r", 11_000_000)))
    >>> round(n["matured"], 2), round(n["matured_pos"], 2)
    (2.0, 1.0)
    """

    label_window_ms = 86_400_000  # class default: snapshots of older books still load
    open_labels: dict[str, list] | None = None

    def __init__(self, label_window_ms: int = 86_400_000) -> None:
        self.recipients: dict[str, list[float]] = {}
        self.label_window_ms = label_window_ms
        #: recipient -> [due_ms, key, engaged, due_ms, key, engaged, ...] (deliveries whose
        #: label window is still open; short: deliveries within one window)
        self.open_labels = {}

    def _get(self, recipient: str, ts_ms: int) -> list[float]:
        h = self.recipients.get(recipient)
        if h is None:
            h = self.recipients[recipient] = [ts_ms, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, -1.0,
                                              0.0, 0.0, 0.0, 0.0, 0.0]
        elif ts_ms > h[_T]:  # decay lazily to the newest time seen
            if len(h) < _FIELDS:  # a history kept before the matured labels existed
                h.extend([0.0] * (_FIELDS - len(h)))
            dt = ts_ms - h[_T]
            week = 0.5 ** (dt / _WEEK_HALF_LIFE_MS)
            h[_DELIV_7D] *= week
            h[_ENGAGED] *= week
            h[_HUMAN_OPENS] *= week
            h[_MACHINE_OPENS] *= week
            h[_HOUR_X] *= week
            h[_HOUR_Y] *= week
            h[_QUICK_OPENS] *= week
            h[_DELIV_1D] *= 0.5 ** (dt / _DAY_HALF_LIFE_MS)
            month = 0.5 ** (dt / _MONTH_HALF_LIFE_MS)
            h[_MATURED] *= month
            h[_MATURED_POS] *= month
            h[_T] = ts_ms
        if self.open_labels:
            pending = self.open_labels.get(recipient)
            if pending and pending[0] <= ts_ms:
                self._mature(recipient, h, pending, ts_ms)
        return h

    def _mature(self, recipient: str, h: list[float], pending: list, ts_ms: int) -> None:
        """Labels whose window closed by `ts_ms` join the matured counts (decayed from
        their due time to now, as if they had been counted then)."""
        i = 0
        while i < len(pending) and pending[i] <= ts_ms:
            w = 0.5 ** ((ts_ms - pending[i]) / _MONTH_HALF_LIFE_MS)
            h[_MATURED] += w
            if pending[i + 2]:
                h[_MATURED_POS] += w
            i += 3
        if i >= len(pending):
            del self.open_labels[recipient]  # type: ignore[union-attr]
        else:
            del pending[:i]

    def delivered(self, recipient: str, ts_ms: int, key: int = -1) -> None:
        h = self._get(recipient, ts_ms)
        h[_DELIV_7D] += 1
        h[_DELIV_1D] += 1
        h[_LAST_DELIVERED] = ts_ms
        if self.open_labels is None:
            self.open_labels = {}
        # due as the models close it: the end of the delivery minute plus the window
        due = (ts_ms // 60_000 + 1) * 60_000 + self.label_window_ms
        self.open_labels.setdefault(recipient, []).extend((due, key, False))

    def engaged(self, recipient: str, ts_ms: int, key: int = -1) -> None:
        """A genuine engagement (human click, reply, conversion); `key`: the message it
        labels (the clicked message, or the one a conversion credits), if any."""
        h = self._get(recipient, ts_ms)
        h[_ENGAGED] += 1
        h[_LAST_ENGAGED] = ts_ms
        self._hour(h, ts_ms, 1.0)
        pending = self.open_labels.get(recipient) if self.open_labels else None
        if pending:
            for i in range(1, len(pending), 3):
                if pending[i] == key:
                    pending[i + 1] = True
                    break

    def opened(self, recipient: str, ts_ms: int, human: bool) -> None:
        h = self._get(recipient, ts_ms)
        if human:
            h[_HUMAN_OPENS] += 1
            self._hour(h, ts_ms, 1.0)
            if 0 <= h[_LAST_DELIVERED] and ts_ms - h[_LAST_DELIVERED] <= _QUICK_OPEN_MS:
                h[_QUICK_OPENS] += 1
        else:
            h[_MACHINE_OPENS] += 1

    @staticmethod
    def _hour(h: list[float], ts_ms: int, weight: float) -> None:
        """The hours a recipient acts at, as a decayed sum of unit vectors on the clock."""
        angle = (ts_ms % _DAY_MS) / _HOUR_MS * _TAU
        h[_HOUR_X] += weight * math.cos(angle)
        h[_HOUR_Y] += weight * math.sin(angle)

    def ever_delivered(self, recipient: str) -> bool:
        h = self.recipients.get(recipient)
        return h is not None and h[_LAST_DELIVERED] >= 0

    def forget(self, recipient: str) -> int:
        """Drop one recipient's history (erasure).

        >>> book = HistoryBook()
        >>> book.delivered("r", 1_000)
        >>> book.forget("r"), book.forget("r"), "r" in book.recipients, book.open_labels
        (1, 0, False, {})
        """
        if self.open_labels:
            self.open_labels.pop(recipient, None)
        return 1 if self.recipients.pop(recipient, None) is not None else 0

    def numbers(self, recipient: str, ts_ms: int) -> tuple[float, ...]:
        """The recipient's features at `ts_ms`, in `RECIPIENT_FEATURES` order."""
        h = self._get(recipient, ts_ms)
        human = h[_HUMAN_OPENS]
        opens = human + h[_MACHINE_OPENS]
        angle = (ts_ms % _DAY_MS) / _HOUR_MS * _TAU
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
            h[_MATURED],
            h[_MATURED_POS],
            human / (h[_DELIV_7D] + 1.0),
            # does the recipient act at this hour of day? (+1 always, -1 never, 0 unknown)
            (h[_HOUR_X] * math.cos(angle) + h[_HOUR_Y] * math.sin(angle))
            / (h[_ENGAGED] + human + 1.0),
            h[_QUICK_OPENS] / (human + 1.0),
        )

    def approx_bytes(self) -> int:
        import sys

        per = sys.getsizeof([0.0] * _FIELDS) + _FIELDS * 24 + 90 + 30  # list, floats, key, slot
        open_per = sys.getsizeof([0] * 3) + 3 * 24 + 30  # a one-delivery open-label list
        return len(self.recipients) * per + len(self.open_labels or ()) * open_per


#: What `HistoryBook.numbers` returns, in order. `matured`/`matured_pos` are raw
#: (decayed) counts of the recipient's matured engagement labels: `features` turns them
#: into a smoothed rate with the models' prior.
RECIPIENT_FEATURES = ("freq_7d", "fatigue_1d", "engaged_7d", "engagement_rate",
                      "machine_open_share", "never_engaged", "recency", "matured",
                      "matured_pos", "human_open_rate", "hour_affinity", "quick_open_share")


#: Pseudo-labels of the per-recipient prior (empirical Bayes): a recipient with this many
#: matured labels weighs their own rate as much as the sender's.
PRIOR_STRENGTH = 8.0


class CampaignRates:
    """Per-campaign running engagement and unsubscribe rates, and per-sender engagement
    rates (the prior of every recipient's own rate), from matured labels."""

    senders: dict[str, list[int]] | None = None  # class default: older snapshots load

    def __init__(self) -> None:
        self.campaigns: dict[str, list[int]] = {}  # campaign -> [resolved, engaged, unsub]
        self.senders = {}  # sender -> [resolved, engaged]

    def outcome(self, campaign: str, engaged: bool, unsubscribed: bool, sender: str = "") -> None:
        c = self.campaigns.get(campaign)
        if c is None:
            c = self.campaigns[campaign] = [0, 0, 0]
        c[0] += 1
        c[1] += engaged
        c[2] += unsubscribed
        if self.senders is None:
            self.senders = {}
        n = self.senders.get(sender)
        if n is None:
            n = self.senders[sender] = [0, 0]
        n[0] += 1
        n[1] += engaged

    def rates(self, campaign: str) -> tuple[float, float]:
        """(engagement rate, unsubscribe rate), shrunk towards zero while labels are few."""
        c = self.campaigns.get(campaign, (0, 0, 0))
        return (c[1] + 0.5) / (c[0] + 10.0), (c[2] + 0.01) / (c[0] + 10.0)

    def prior(self, sender: str) -> float:
        """The sender's engagement rate: the mean of its recipients' prior (Beta with
        `PRIOR_STRENGTH` pseudo-labels); 4% until labels come in."""
        n = (self.senders or {}).get(sender, (0, 0))
        return (n[1] + 0.04 * 50) / (n[0] + 50)


def smoothed_rate(matured: float, positives: float, prior: float,
                  strength: float = PRIOR_STRENGTH) -> float:
    """A recipient's engagement rate shrunk to the prior (Beta-binomial posterior mean).

    >>> smoothed_rate(0, 0, 0.04)                 # no history: the prior
    0.04
    >>> round(smoothed_rate(10, 8, 0.04), 3)      # many positives move it
    0.462
    >>> round(smoothed_rate(30, 0, 0.04), 4)      # many misses pull it down
    0.0084
    """
    return (positives + strength * prior) / (matured + strength)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def features(recipient: tuple[float, ...], provider: str, sender: str, campaign: str,
             variant: str, ts_ms: int, campaigns: CampaignRates) -> dict[str, float]:
    """A delivery's features: its context, the recipient's numbers, the campaign's rates,
    the recipient's smoothed rate against the sender's prior, and crosses of that rate
    with the provider and with the recipient's affinity to this hour of day.

    >>> h = HistoryBook()
    >>> x = features(h.numbers("r", 0), "gmail.com", "s", "c", "", 0, CampaignRates())
    >>> x["eb_rate"], x["eb_lift"], x["prov=gmail.com|eb=new"]
    (0.04, 0.0, 1.0)
    """
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
    matured, positives = x["matured"], x["matured_pos"]
    prior = campaigns.prior(sender)
    post = smoothed_rate(matured, positives, prior)
    lift = _logit(min(max(post, 1e-4), 0.9999)) - _logit(prior)
    x["matured"] = math.log1p(matured) / 3.0
    x["matured_pos"] = math.log1p(positives) / 2.0
    x["eb_rate"] = post
    x["eb_lift"] = lift / 4.0
    x["campaign_rate"] = rate
    x["campaign_unsub_rate"] = unsub_rate
    # crosses: who the recipient is (by their smoothed rate) with where and when
    eb = ("new" if matured < 0.5 else "low" if lift < -0.5 else "mid" if lift < 0.5
          else "high" if lift < 1.5 else "top")
    affinity = x["hour_affinity"]
    aff = "on" if affinity > 0.3 else "off" if affinity < -0.3 else "any"
    # (hour of day x class was tried too: -0.02 ROC AUC, 120 sparse weights that overfit;
    # the hour affinity is the recipient's own hour, and it crosses better)
    x[f"prov={provider}|eb={eb}"] = 1.0
    x[f"aff={aff}|eb={eb}"] = 1.0
    if variant:
        x["var=" + variant] = 1.0
    return x
