"""Realistic synthetic email traffic in the canonical wire format v1 (DESIGN.md).

A `TrafficGenerator` simulates a few sending domains mailing a fixed recipient
population and yields every resulting event in event-time order, ready to be
produced to Kafka or written to a file. Nothing here talks to Kafka or reads
the wall clock (except for the default `start`), so the same seed and start
give the same bytes.

What makes it realistic rather than noise:

- senders with campaigns (some A/B tested, one variant better than the other)
  and mailflows (`flow_id`: welcome, cart_abandon, winback, ...);
- recipients spread over mailbox providers in a real-world mix (Gmail,
  Microsoft, Yahoo/AOL, iCloud, GMX, WEB.DE, T-Online, ..., company domains),
  each with a preferred hour of day and an engagement propensity (many dormant
  readers, some loyal ones), a fixed mail client and home IP;
- the message lifecycle: `sent`, then `delivered` seconds later, or
  `deferred` (4xx) and retried, or `bounce` with the provider's own SMTP
  diagnostics; `dropped` for suppressed addresses (unsubscribes, complaints
  and hard bounces suppress later sends from the same sender);
- Apple Mail Privacy Protection: every message delivered to an Apple Mail
  user is "opened" by Apple's proxy (user agent ``Mozilla/5.0``, IP in 17/8) a
  few seconds after delivery; genuine opens carry real mail-client user
  agents and come minutes to hours later, often near the reader's preferred
  hour;
- security scanners at company domains "click" every link of a message
  within the same second, 1-5 s after delivery;
- human clicks after opens, conversions after clicks, rare replies,
  unsubscribes and complaints;
- an optional `Incident`: from a third into the window on, one sender's mail
  to one mailbox provider is blocked, rate limited and complained about.

>>> gen = TrafficGenerator(seed=7, start=1_795_255_200.0, senders=2, recipients=500)
>>> events = list(gen.events(rate=50, seconds=120))
>>> first = events[0]
>>> first.topic, first.ts
('email.deliveries', 1795255200.0)
>>> orjson.loads(first.value)["type"]
'sent'
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
>>> events == list(gen.events(rate=50, seconds=120))  # deterministic
True
>>> Incident.parse("news.acme.example:gmail.com")
Incident(sender='news.acme.example', provider='gmail.com')
"""

from __future__ import annotations

import heapq
import math
import os
import random
import time
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import accumulate
from typing import NamedTuple

import numpy as np
import orjson

from schemas.mailbox_providers import provider_key
from schemas.topics import TOPIC_BY_TYPE

__all__ = ["GeneratedEvent", "Incident", "TrafficGenerator", "write_jsonl"]


class GeneratedEvent(NamedTuple):
    """One event ready for Kafka: `ts` (epoch seconds) lets the caller pace or compress time."""

    ts: float
    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class Incident:
    """A deliverability incident: `sender`'s mail to `provider` (and its alias domains)."""

    sender: str
    provider: str

    @classmethod
    def parse(cls, text: str) -> Incident:
        """Parse ``"sender:provider"``, e.g. ``"news.acme.example:gmail.com"``.

        >>> Incident.parse("gmail.com")
        Traceback (most recent call last):
        ...
        ValueError: incident must be 'sender:provider' (e.g. ...), got 'gmail.com'
        """
        parts = text.strip().split(":")
        if len(parts) != 2 or not all(p.strip() for p in parts):
            raise ValueError(
                "incident must be 'sender:provider' (e.g. ...), "
                f"got {text!r}"
            )
        sender, provider = (p.strip().lower() for p in parts)
        for what, name in (("sender", sender), ("provider", provider)):
            if "." not in name or " " in name or "@" in name:
                raise ValueError(f"incident {what} must be a domain name, got {name!r} in {text!r}")
        return cls(sender, provider)


# --- the world: mailbox providers -------------------------------------------------
# (domain, share of recipients in %, MTA dialect for SMTP replies, share of Apple Mail users)
_DOMAINS: tuple[tuple[str, float, str, float], ...] = (
    ("gmail.com", 33.0, "gmail", 0.30),
    ("googlemail.com", 1.5, "gmail", 0.25),
    ("outlook.com", 6.0, "microsoft", 0.25),
    ("hotmail.com", 6.0, "microsoft", 0.25),
    ("live.com", 1.5, "microsoft", 0.2),
    ("msn.com", 0.5, "microsoft", 0.2),
    ("yahoo.com", 6.0, "yahoo", 0.3),
    ("ymail.com", 0.5, "yahoo", 0.3),
    ("aol.com", 1.5, "yahoo", 0.35),
    ("icloud.com", 5.0, "apple", 1.0),
    ("me.com", 1.0, "apple", 1.0),
    ("mac.com", 0.5, "apple", 1.0),
    ("gmx.de", 4.0, "gmx", 0.2),
    ("gmx.net", 1.5, "gmx", 0.2),
    ("gmx.at", 0.5, "gmx", 0.2),
    ("gmx.ch", 0.3, "gmx", 0.25),
    ("web.de", 4.0, "webde", 0.2),
    ("t-online.de", 2.5, "tonline", 0.2),
    ("freenet.de", 0.7, "generic", 0.15),
    ("bluewin.ch", 0.8, "generic", 0.3),
    ("orange.fr", 1.5, "generic", 0.25),
    ("mail.ru", 1.2, "generic", 0.05),
    ("yandex.ru", 0.8, "generic", 0.05),
    ("qq.com", 1.0, "generic", 0.1),
    ("163.com", 0.6, "generic", 0.1),
    ("comcast.net", 1.0, "generic", 0.35),
    # company domains: Exchange Online or their own MTA, behind a link scanner
    ("contoso.example", 2.0, "microsoft", 0.15),
    ("fabrikam.example", 1.5, "microsoft", 0.15),
    ("initech.example", 1.2, "generic", 0.1),
    ("globex.example", 1.0, "generic", 0.1),
    ("northwind.example", 0.8, "microsoft", 0.15),
)
_CORPORATE = frozenset(d for d, *_ in _DOMAINS if d.endswith(".example"))

# Per MTA dialect: chance that a normal message is blocked / deferred.
# Healthy senders (Gmail's guidance: complaints < 0.1%, few blocks): the defaults
# stay clear of the throttle's thresholds, so only an --incident trips them.
_BLOCK_P = {"gmail": 0.0005, "microsoft": 0.001, "yahoo": 0.001, "apple": 0.0005, "gmx": 0.001,
            "webde": 0.001, "tonline": 0.002, "generic": 0.001}
_DEFER_P = {"gmail": 0.005, "microsoft": 0.005, "yahoo": 0.01, "apple": 0.005, "gmx": 0.01,
            "webde": 0.01, "tonline": 0.01, "generic": 0.01}

# SMTP replies: dialect -> kind -> (code, enhanced status, text); {ip} is the sending IP.
_GENERIC_REPLIES = {
    "user_unknown": (550, "5.1.1", "550 5.1.1 <recipient>: Recipient address rejected: "
                     "User unknown in virtual mailbox table"),
    "mailbox_full": (552, "5.2.2", "552 5.2.2 Mailbox full: quota exceeded"),
    "block": (550, "5.7.1", "550 5.7.1 Service unavailable; Client host [{ip}] blocked using "
              "zen.spamhaus.org; https://www.spamhaus.org/query/ip/{ip}"),
    "defer": (451, "4.7.1", "451 4.7.1 Greylisting in action, please come back later"),
    "rate_limit": (421, "4.7.0", "421 4.7.0 Too many connections from [{ip}], try again later"),
    "expired": (554, "4.4.7", "554 4.4.7 Message expired: unable to deliver in 2880 minutes. "
                "<421 4.4.0 Unable to connect to remote host>"),
}
_REPLIES: dict[str, dict[str, tuple[int, str, str]]] = {
    "generic": _GENERIC_REPLIES,
    "gmail": {
        "user_unknown": (550, "5.1.1", "550-5.1.1 The email account that you tried to reach "
                         "does not exist. Please try double-checking the recipient's email "
                         "address for typos or unnecessary spaces. For more information, go to "
                         "https://support.google.com/mail/?p=NoSuchUser"),
        "mailbox_full": (552, "5.2.2", "552-5.2.2 The recipient's inbox is out of storage "
                         "space. Please direct the recipient to "
                         "https://support.google.com/mail/?p=OverQuotaPerm"),
        "block": (550, "5.7.1", "550-5.7.1 [{ip}] Gmail has detected that this message is "
                  "likely unsolicited mail. To reduce the amount of spam sent to Gmail, this "
                  "message has been blocked. For more information, go to "
                  "https://support.google.com/mail/?p=UnsolicitedMessageError"),
        "defer": (450, "4.2.1", "450-4.2.1 The user you are trying to contact is receiving "
                  "mail too quickly. Please resend your message at a later time. "
                  "https://support.google.com/mail/?p=ReceivingRate"),
        "rate_limit": (421, "4.7.28", "421-4.7.28 [{ip}] Gmail has detected an unusual rate "
                       "of unsolicited mail originating from your IP address. To protect our "
                       "users from spam, mail sent from your IP address has been temporarily "
                       "rate limited. For more information, go to "
                       "https://support.google.com/mail/?p=UnsolicitedRateLimitError"),
    },
    "microsoft": {
        "user_unknown": (550, "5.1.1", "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"),
        "mailbox_full": (552, "5.2.2", "552 5.2.2 STOREDRV.Deliver; mailbox full"),
        "block": (550, "5.7.1", "550 5.7.1 Unfortunately, messages from [{ip}] weren't sent. "
                  "Please contact your Internet service provider since part of their network "
                  "is on our block list (S3150). You can also refer your provider to "
                  "http://mail.live.com/mail/troubleshooting.aspx#errors."),
        "defer": (451, "4.7.500", "451 4.7.500 Server busy. Please try again later from "
                  "[{ip}]. (S77719)"),
        "rate_limit": (451, "4.7.650", "451 4.7.650 The mail server [{ip}] has been "
                       "temporarily rate limited due to IP reputation. For e-mail delivery "
                       "information, see https://postmaster.live.com (S775)"),
    },
    "yahoo": {
        "user_unknown": (554, "5.1.1", "554 delivery error: dd This user doesn't have a "
                         "yahoo.com account - mta4137.mail.gq1.yahoo.com"),
        "mailbox_full": (552, "5.2.2", "552 1 Requested mail action aborted, mailbox full"),
        "block": (554, "5.7.9", "554 5.7.9 Message not accepted for policy reasons. See "
                  "https://senders.yahooinc.com/error-codes"),
        "defer": (451, "4.3.0", "451 4.3.0 Temporary server error. Please try again later"),
        "rate_limit": (421, "4.7.0", "421 4.7.0 [TSS04] Messages from {ip} temporarily "
                       "deferred due to unexpected volume or user complaints - 4.16.55.1; see "
                       "https://senders.yahooinc.com/error-codes"),
    },
    "apple": {
        "user_unknown": (550, "5.1.1", "550 5.1.1 <recipient>: user does not exist"),
        "block": (554, "5.7.1", "554 5.7.1 [CS01] Message rejected due to local policy. "
                  "Please visit https://support.apple.com/en-us/HT204137"),
        "defer": (451, "4.3.0", "451 4.3.0 Temporary server error. Please try again later"),
        "rate_limit": (421, "4.7.0", "421 4.7.0 [TS01] Messages from {ip} temporarily "
                       "deferred due to unexpected volume or user complaints"),
    },
    "gmx": {
        "user_unknown": (550, "5.1.1", "550 Requested action not taken: mailbox unavailable"),
        "block": (554, "5.7.1", "554-gmx.net (mxgmx114) Nemesis ESMTP Service not available "
                  "554-No SMTP service 554-IP address is block listed. 554 For explanation "
                  "visit https://postmaster.gmx.net/en/case?c=r0301&i=ip&v={ip}"),
        "defer": (451, "4.3.0", "451 4.3.0 Temporary server error. Please try again later"),
    },
    "webde": {
        "user_unknown": (550, "5.1.1", "550 Requested action not taken: mailbox unavailable"),
        "block": (554, "5.7.1", "554-web.de (mxweb112) Nemesis ESMTP Service not available "
                  "554-No SMTP service 554-IP address is block listed. 554 For explanation "
                  "visit https://postmaster.web.de/en/case?c=r0301&i=ip&v={ip}"),
        "defer": (451, "4.3.0", "451 4.3.0 Temporary server error. Please try again later"),
    },
    "tonline": {
        "block": (554, "5.7.1", "554 IP={ip} - A problem occurred. (Ask your postmaster for "
                  "help or to contact tosa@rx.t-online.de to clarify.) (BL)"),
        "defer": (451, "4.7.1", "451 4.7.1 Greylisted, please try again in 5 minutes"),
    },
}
for _dialect in _REPLIES.values():  # each dialect falls back to the generic replies
    for _kind, _reply in _GENERIC_REPLIES.items():
        _dialect.setdefault(_kind, _reply)
_BOUNCE_KIND = {"user_unknown": "hard", "mailbox_full": "soft", "block": "block",
                "expired": "soft"}

# --- the world: mail clients -------------------------------------------------------
_APPLE_PROXY_UA = "Mozilla/5.0"
_UA_IPHONE_MAIL = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                   "(KHTML, like Gecko) Mobile/15E148")
_UA_MAC_MAIL = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                "(KHTML, like Gecko)")
_UA_GMAIL_PROXY = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                   "(via ggpht.com GoogleImageProxy)")
_UA_YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
_UA_OUTLOOK = ("Mozilla/4.0 (compatible; ms-office; MSOffice 16) Microsoft Outlook 16.0.17928; "
               "Pro")
_UA_OUTLOOK_IOS = "Outlook-iOS/723.4027091.prod.iphone (4.2409.0)"
_UA_THUNDERBIRD = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 "
                   "Thunderbird/115.12.2")
_UA_CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0.0.0 Safari/537.36")
_UA_EDGE = _UA_CHROME + " Edg/126.0.2592.87"
_UA_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0"
_UA_ANDROID = ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
               "Chrome/126.0.6478.71 Mobile Safari/537.36")
_UA_SAFARI_IOS = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                  "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1")
_UA_SAFARI_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
                  "(KHTML, like Gecko) Version/17.5 Safari/605.1.15")

# Mail clients per MTA dialect for people who do not read in Apple Mail: (open UA, weight).
_OPEN_CLIENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "gmail": ((_UA_GMAIL_PROXY, 0.8), (_UA_THUNDERBIRD, 0.05), (_UA_OUTLOOK, 0.15)),
    "microsoft": ((_UA_OUTLOOK, 0.45), (_UA_EDGE, 0.35), (_UA_OUTLOOK_IOS, 0.2)),
    "yahoo": ((_UA_YAHOO_PROXY, 0.75), (_UA_CHROME, 0.15), (_UA_ANDROID, 0.1)),
    "apple": ((_UA_IPHONE_MAIL, 0.7), (_UA_MAC_MAIL, 0.3)),
    "generic": ((_UA_CHROME, 0.35), (_UA_FIREFOX, 0.15), (_UA_THUNDERBIRD, 0.2),
                (_UA_ANDROID, 0.3)),
}
_BROWSERS = ((_UA_CHROME, 0.4), (_UA_EDGE, 0.15), (_UA_FIREFOX, 0.1), (_UA_ANDROID, 0.35))
_APPLE_BROWSERS = ((_UA_SAFARI_IOS, 0.75), (_UA_SAFARI_MAC, 0.25))
_SCANNERS = (  # link scanners: some honest, some dressed as a browser
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/126.0.6478.126 Safari/537.36",
    "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://www.barracuda.com)",
    "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    "Proofpoint URL Defense/1.0",
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/7.0)",
    "python-requests/2.32.3",
)
_SCANNER_NETS = ("40.94.", "40.107.", "52.100.", "104.47.", "185.58.", "148.163.")
_APPLE_PROXY_NETS = ("17.58.", "17.120.", "17.121.", "17.122.", "17.123.", "17.252.")
_GOOGLE_PROXY_NETS = ("66.249.84.", "66.249.88.", "66.249.93.", "74.125.212.")
_YAHOO_PROXY_NETS = ("98.137.", "74.6.")
_HOME_FIRST_OCTETS = (24, 31, 46, 62, 73, 77, 79, 80, 84, 85, 87, 89, 91, 93, 95, 98, 109, 178,
                      188, 212, 217)

# Hours of day (UTC) people like to read mail: morning, lunch, evening peaks.
_HOUR_WEIGHTS = np.array([0.3, 0.2, 0.2, 0.2, 0.3, 1.0, 3.0, 6.0, 7.0, 5.0, 3.0, 3.0, 5.0, 4.0,
                          2.5, 2.0, 2.0, 3.0, 5.0, 6.0, 6.0, 4.0, 2.0, 0.8])


# --- the world: senders ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _SenderProfile:
    domain: str
    share: float            # of send volume
    site: str               # where links point
    campaigns: tuple[tuple[str, bool], ...]  # (campaign_id, A/B tested?)
    flows: tuple[tuple[str, int, str], ...]  # (flow_id, steps, conversion goal)
    flow_share: float       # of this sender's messages that belong to a flow
    engagement: float       # multiplier on readers' open propensity
    complaint_rate: float   # per delivered message
    goal: str
    currency: str
    value_median: float
    ip_net: str             # sending IPs: ip_net + 10..13


_SENDERS: tuple[_SenderProfile, ...] = (
    _SenderProfile("news.acme.example", 0.35, "www.acme.example",
                   (("acme-weekly-2026w47", False), ("acme-product-launch", True),
                    ("acme-webinar-invite", False)),
                   (("welcome", 3, "first_purchase"),), 0.25, 1.0, 0.0004,
                   "purchase", "USD", 60.0, "192.0.2."),
    _SenderProfile("mail.shop.example", 0.30, "shop.example",
                   (("shop-black-friday", True), ("shop-new-arrivals", False)),
                   (("cart_abandon", 2, "purchase"), ("winback", 2, "purchase")), 0.45, 0.9,
                   0.0005, "purchase", "EUR", 45.0, "198.51.100."),
    _SenderProfile("notify.saas.example", 0.20, "app.saas.example",
                   (("saas-product-updates", False), ("saas-pricing-change", True)),
                   (("onboarding", 4, "activation"),), 0.6, 1.3, 0.0003,
                   "upgrade", "USD", 49.0, "203.0.113."),
    _SenderProfile("promo.travel.example", 0.15, "travel.example",
                   (("travel-summer-deals", True), ("travel-last-minute", False)),
                   (("price_alert", 1, "booking"),), 0.2, 0.7, 0.0006,
                   "booking", "EUR", 420.0, "192.0.2."),
    _SenderProfile("updates.media.example", 0.15, "media.example",
                   (("media-daily-digest", False), ("media-subscription-offer", True)),
                   (("trial_nurture", 3, "subscription"),), 0.3, 1.1, 0.0004,
                   "subscription", "EUR", 9.99, "198.51.100."),
    _SenderProfile("info.bank.example", 0.10, "bank.example",
                   (("bank-statement-ready", False), ("bank-card-offer", True)),
                   (("kyc_reminder", 2, "verified"),), 0.4, 1.2, 0.0003,
                   "card_application", "CHF", 0.0, "203.0.113."),
)


def _sender_profile(i: int) -> _SenderProfile:
    """The i-th sender; beyond the hand-written ones, plain synthetic brands."""
    if i < len(_SENDERS):
        return _SENDERS[i]
    brand = f"brand{i}"
    return _SenderProfile(
        f"mail.{brand}.example", 0.1, f"www.{brand}.example",
        ((f"{brand}-newsletter", False), (f"{brand}-sale", True)),
        (("welcome", 2, "purchase"),), 0.3, 1.0, 0.001, "purchase", "USD", 50.0,
        f"198.51.{100 + i % 100}.",
    )


class _Mailing(NamedTuple):
    """What one message is part of: a campaign, or one step of a flow."""

    campaign_id: str
    flow_id: str | None
    variants: tuple[str, ...]       # () when not A/B tested
    lift: tuple[float, ...]         # open-propensity multiplier per variant
    links: tuple[str, ...]
    goal: str
    convert_p: float                # conversion chance per clicking reader
    expected: bool                  # the reader waits for it (first mail of a flow)


_PATHS = ("", "sale", "new", "account", "deals", "blog/latest", "pricing", "help")

# UTC offsets some integrations put in their RFC 3339 timestamps: (minutes east, suffix)
_OFFSETS = ((60, "+01:00"), (120, "+02:00"), (-300, "-05:00"), (330, "+05:30"), (-420, "-07:00"))
_DROP_REASONS = ("Bounced Address", "Unsubscribed Address", "Spam Reporting Address")
_AUTO_REPLY = {"auto_submitted": "auto-replied"}  # not a v1 field: it ends up in `attrs`
#: What people write back (engaging replies only: the generator's truth counts every human
#: reply as an engagement), picked by a hash so the random sequence stays the same.
_REPLY_TEXTS = (
    ("Re: Your offer", "Sounds good - could you send me the pricing for our team?"),
    ("Re: Your offer", "Yes, I'm interested. Can we schedule a short call next week?"),
    ("AW: Ihr Angebot", "Klingt interessant, bitte schicken Sie mir ein Angebot."),
    ("Re: Your order", "Hi, my order still hasn't arrived. Can you tell me when it ships?"),
    ("Re: Your account", "I can't log in to my account since yesterday, can you help?"),
    ("AW: Ihre Bestellung", "Hallo, wie kann ich meine Lieferadresse noch ändern?"),
    ("Re: News", "Thanks for the update!"),
)
_OOO_TEXT = ("Automatic reply: {subject}", "Thank you for your email. I am out of the office "
             "until {until} with limited access to email. I will reply when I am back.")


def _reply_text(seed: int) -> dict[str, str]:
    subject, body = _REPLY_TEXTS[seed % len(_REPLY_TEXTS)]
    return {"subject": subject, "body": body}


def _ooo_text(ts_ms: int, seed: int) -> dict[str, str]:
    back = datetime.fromtimestamp(ts_ms / 1000 + 86_400 * (2 + seed % 12), UTC)
    subject, body = _OOO_TEXT
    return {**_AUTO_REPLY, "subject": subject.format(subject="News"),
            "body": body.format(until=f"{back.day} {back:%B %Y}")}
#: Why a sender stops mailing an address after one of its events (ESP "dropped" reasons).
_SUPPRESSED_BECAUSE = {"complaint": "Spam Reporting Address", "unsubscribe": "Unsubscribed Address",
                       "bounce": "Bounced Address"}
_MS_PER_DAY = 86_400_000
_MS_PER_HOUR = 3_600_000


# One planned event: (ts_ms, type, extra fields or None, suppresses the address for the sender?,
# leaves the message_id out?)
_Plan = tuple[int, str, "dict | None", bool, bool]


class TrafficGenerator:
    """Synthetic, deterministic email traffic: `events(rate, seconds)` yields `GeneratedEvent`s.

    Each call to `events` replays the same world from `start`, so two calls with the same
    arguments give identical output. `rate` counts all event types together; the send rate
    is derived from it.
    """

    def __init__(self, seed: int = 1, start: float | None = None,
                 incident: Incident | None = None, senders: int = 4,
                 recipients: int = 20000) -> None:
        if senders < 1:
            raise ValueError(f"senders must be at least 1, got {senders}")
        if recipients < 1:
            raise ValueError(f"recipients must be at least 1, got {recipients}")
        self.seed = seed
        #: Side channel (off unless `record_truth` was called): message id -> the message's
        #: true P(genuine engagement within the label window), see `engagement_truth`.
        self.truth: dict[str, float] | None = None
        self.truth_context: dict[str, tuple] = {}
        self._truth_window_ms = 0
        self._last_truth: tuple | None = None
        self.start = round(time.time() if start is None else float(start), 3)
        self.incident = incident
        self._tag = f"{seed & 0xFFFFFFFF:08x}"
        self._profiles = [_sender_profile(i) for i in range(senders)]
        self._build_recipients(recipients)
        self._build_senders()
        self._incident_sender = -1
        if incident is not None:
            names = [p.domain for p in self._profiles]
            if incident.sender not in names:
                raise ValueError(f"incident sender {incident.sender!r} is not one of the "
                                 f"generated senders: {', '.join(names)}")
            key = provider_key(incident.provider)
            if key not in self._provider_keys:
                raise ValueError(f"incident provider {incident.provider!r} is not a mailbox "
                                 f"provider of the recipients: {', '.join(self._provider_keys)}")
            self._incident_sender = names.index(incident.sender)
            self._incident_domains = frozenset(
                i for i, (d, *_) in enumerate(_DOMAINS) if provider_key(d) == key)

    # --- ground truth (for benchmarks; never changes the events) ---------------------
    def record_truth(self, label_window_s: int) -> None:
        """From now on, fill `truth` (message id -> true P(engagement label)) and
        `truth_context` (message id -> (td_ms, sender, mailing, variant, recipient, incident))
        for every delivered message that `events` generates. It draws nothing: the
        events are byte for byte the same with or without it."""
        self.truth = {}
        self.truth_context = {}
        self._truth_window_ms = label_window_s * 1000

    def _record_truth(self, message_id: str, end: int) -> None:
        td, s, m, v, r, incident = ctx = self._last_truth  # type: ignore[misc]
        # The engine closes a label at the end of the delivery minute plus the window,
        # and the stream ends at `end`: what happens after either is never seen.
        due = min((td // 60_000 + 1) * 60_000 + self._truth_window_ms, end)
        self.truth[message_id] = float(engagement_truth(  # type: ignore[index]
            td, due, np.array([self._propensity[r]]), np.array([self._hour[r]]),
            np.array([self._notified[r]]), self._profiles[s].engagement, m.lift[v],
            m.expected, bool(m.flow_id), incident)[0])
        self.truth_context[message_id] = ctx

    def deliverable_members(self, sender: int) -> dict[int, np.ndarray]:
        """The recipients on `sender`'s list a message can reach, by domain index (what a
        context-only oracle averages the truth over)."""
        bad = set(self._suppressed0)
        out: dict[int, list[int]] = {}
        for r in self._lists[sender]:
            if not (self._invalid[r] or self._full[r] or r in bad):
                out.setdefault(self._domain_ix[r], []).append(r)
        return {d: np.array(rs) for d, rs in out.items()}

    # --- setup ---------------------------------------------------------------------
    def _build_recipients(self, n: int) -> None:
        """The recipient population and each reader's habits, drawn once with numpy."""
        rng = np.random.default_rng([self.seed, 1])
        shares = np.array([s for _, s, _, _ in _DOMAINS])
        domain_ix = rng.choice(len(_DOMAINS), size=n, p=shares / shares.sum())
        apple_share = np.array([a for *_, a in _DOMAINS])[domain_ix]
        apple = rng.random(n) < apple_share
        # Engagement: many dormant readers, a casual middle, some loyal fans.
        segment = rng.choice(3, size=n, p=[0.45, 0.40, 0.15])
        propensity = np.select(
            [segment == 0, segment == 1],
            [rng.beta(1, 60, n), rng.beta(2.5, 7, n)], rng.beta(6, 2.5, n))
        hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        notified = rng.random(n) < 0.3           # phone notifications on: reads on arrival
        invalid = rng.random(n) < 0.012          # the address does not exist (any more)
        full = rng.random(n) < 0.004             # an abandoned, full mailbox
        suppressed = rng.random(n) < 0.01        # suppressed before the window started
        drop_reason = rng.integers(0, len(_DROP_REASONS), n)
        client_u = rng.random(n)
        browser_u = rng.random(n)
        octets = rng.integers(1, 255, size=(n, 3))
        first = rng.choice(np.array(_HOME_FIRST_OCTETS), size=n)

        self._provider_keys = sorted({provider_key(d) for d, *_ in _DOMAINS})
        self._addresses = [f"user{i}@{_DOMAINS[d][0]}" for i, d in enumerate(domain_ix.tolist())]
        self._keys = [a.encode() for a in self._addresses]
        self._domain_ix = domain_ix.tolist()
        self._apple = apple.tolist()
        self._propensity = propensity.tolist()
        self._hour = hour.tolist()
        self._notified = notified.tolist()
        self._invalid = invalid.tolist()
        self._full = full.tolist()
        reasons = drop_reason.tolist()
        self._suppressed0 = {
            i: _DROP_REASONS[reasons[i]] for i in np.flatnonzero(suppressed).tolist()}
        dialects = [_DOMAINS[d][2] for d in self._domain_ix]
        self._dialect = dialects
        self._corporate = [_DOMAINS[d][0] in _CORPORATE for d in self._domain_ix]
        self._scanner = [_SCANNERS[d % len(_SCANNERS)] for d in self._domain_ix]
        # Each reader keeps one mail client, one browser and one home IP.
        home_ip = [f"{a}.{b}.{c}.{d}"
                   for a, (b, c, d) in zip(first.tolist(), octets.tolist(), strict=True)]
        open_ua: list[str] = []
        click_ua: list[str] = []
        for i in range(n):
            if apple[i]:
                clients, browsers = _OPEN_CLIENTS["apple"], _APPLE_BROWSERS
            else:
                clients = _OPEN_CLIENTS.get(dialects[i], _OPEN_CLIENTS["generic"])
                browsers = _BROWSERS
            open_ua.append(_pick(clients, client_u[i]))
            click_ua.append(_pick(browsers, browser_u[i]))
        self._home_ip = home_ip
        self._open_ua = open_ua
        self._click_ua = click_ua

    def _build_senders(self) -> None:
        """Mailings (campaigns, flow steps) per sender and who is on each sender's list."""
        rng = np.random.default_rng([self.seed, 2])
        n = len(self._addresses)
        self._sender_cum = list(accumulate(p.share for p in self._profiles))
        self._mailings: list[list[_Mailing]] = []
        self._mailing_cum: list[list[float]] = []
        self._lists: list[list[int]] = []
        for profile in self._profiles:
            mailings: list[_Mailing] = []
            weights: list[float] = []
            for j, (cid, ab) in enumerate(profile.campaigns):
                lift = (1.0, float(rng.choice([0.85, 1.15, 1.3]))) if ab else (1.0,)
                mailings.append(_Mailing(cid, None, ("A", "B") if ab else (), lift,
                                         self._links(profile, cid, rng), profile.goal, 0.1, False))
                weights.append((1 - profile.flow_share) / len(profile.campaigns) * 0.8 ** j)
            for flow_id, steps, goal in profile.flows:
                for step in range(1, steps + 1):
                    cid = f"{flow_id}-{step}"
                    mailings.append(_Mailing(cid, flow_id, (), (1.0,),
                                             self._links(profile, cid, rng), goal,
                                             0.2 / step, step == 1))
                    weights.append(profile.flow_share / len(profile.flows) * 0.6 ** step)
            self._mailings.append(mailings)
            self._mailing_cum.append(list(accumulate(weights)))
            size = max(1, int(n * rng.uniform(0.5, 0.8)))
            self._lists.append(sorted(rng.choice(n, size=size, replace=False).tolist()))

    @staticmethod
    def _links(profile: _SenderProfile, cid: str, rng: np.random.Generator) -> tuple[str, ...]:
        k = int(rng.integers(3, 6))
        paths = rng.choice(len(_PATHS), size=k, replace=False).tolist()
        return tuple(f"https://{profile.site}/{_PATHS[p]}?utm_source=email&utm_medium=email"
                     f"&utm_campaign={cid}&utm_content=link{j + 1}"
                     for j, p in enumerate(paths))

    # --- the lifecycle of one message -------------------------------------------------
    def _plan(self, rng: random.Random, t: int, s: int, m: _Mailing, v: int, r: int,
              incident: bool) -> list[_Plan]:
        """Everything that will happen to a message sent at `t` (ms), after `sent` itself."""
        rnd = rng.random
        gauss = rng.gauss
        profile = self._profiles[s]
        dialect = self._dialect[r]
        ip = f"{profile.ip_net}{10 + (r & 3)}"
        out: list[_Plan] = []

        # 1. delivery: deferrals and retries, bounces, or delivered
        td = t + 300 + int(1200 * math.exp(0.8 * gauss()))
        if incident:
            x = rnd()
            if x < 0.30:
                out.append((td, "bounce", self._smtp(s, dialect, "block", ip, rnd), False, False))
                return out
            deferred = x < 0.60
            kind = "rate_limit"
        elif self._invalid[r]:
            out.append((td, "bounce", self._smtp(s, dialect, "user_unknown", ip, rnd), True,
                        False))
            return out
        elif self._full[r]:
            out.append((td, "bounce", self._smtp(s, dialect, "mailbox_full", ip, rnd), False,
                        False))
            return out
        else:
            x = rnd()
            if x < _BLOCK_P[dialect]:
                out.append((td, "bounce", self._smtp(s, dialect, "block", ip, rnd), False, False))
                return out
            deferred = x < _BLOCK_P[dialect] + _DEFER_P[dialect]
            kind = "defer"
        attempts = 0
        while deferred:
            out.append((td, "deferred", self._smtp(s, dialect, kind, ip, rnd, bounce=False),
                        False, False))
            attempts += 1
            td += int(300_000 * math.exp(0.5 * gauss()) * attempts)  # backoff grows
            if attempts >= 5:
                out.append((td, "bounce", self._smtp(s, dialect, "expired", ip, rnd), False,
                            False))
                return out
            deferred = rnd() < (0.5 if incident else 0.15)
        out.append((td, "delivered", None, False, False))

        # 2. machines: Apple's privacy proxy opens everything; scanners click every link
        if self._apple[r]:
            net = _APPLE_PROXY_NETS[int(rnd() * len(_APPLE_PROXY_NETS))]
            out.append((td + 800 + int(rng.expovariate(1 / 3000)), "open",
                        {"user_agent": _APPLE_PROXY_UA,
                         "ip": f"{net}{int(rnd() * 256)}.{int(rnd() * 254) + 1}"}, False, False))
        if self._corporate[r] and rnd() < 0.35 or rnd() < 0.003:
            tb = td + 1000 + int(rnd() * 3500)
            second_end = tb - tb % 1000 + 999
            ua = self._scanner[r] if self._corporate[r] else _SCANNERS[0]
            net = _SCANNER_NETS[int(rnd() * len(_SCANNER_NETS))]
            bot = {"user_agent": ua, "ip": f"{net}{int(rnd() * 256)}.{int(rnd() * 254) + 1}"}
            if rnd() < 0.4:  # some scanners fetch the images too
                out.append((tb, "open", bot, False, False))
            for j, url in enumerate(m.links):
                out.append((min(tb + j * (3 + int(rnd() * 40)), second_end), "click",
                            {**bot, "url": url}, False, False))

        # Out-of-office autoresponders answer within seconds (RFC 3834 marks them).
        if rnd() < (0.015 if self._corporate[r] else 0.001):
            out.append((td + 2000 + int(rnd() * 20_000), "reply", _ooo_text(td, r), False,
                        False))

        # 3. the reader: opens near their preferred hour, then clicks, converts, ...
        p_open = open_probability(td, self._propensity[r], self._hour[r], profile.engagement,
                                  m.lift[v], m.expected, incident)
        if self.truth is not None:  # side channel: no draw, the random sequence is unchanged
            self._last_truth = (td, s, m, v, r, incident)
        opened = rnd() < p_open
        if opened:
            to = td + self._open_delay(rng, td, r, m.expected)
            open_extra = self._open_extra(r, rnd)
            out.append((to, "open", open_extra, False, False))
            if rnd() < 0.25:  # read it again later
                out.append((to + int(600_000 * math.exp(1.2 * gauss())), "open", open_extra,
                            False, False))
            if rnd() < min(0.5, 0.06 + 0.35 * self._propensity[r]):
                links = m.links
                tc = to + 4000 + int(20_000 * math.exp(gauss()))
                click = {"user_agent": self._click_ua[r], "ip": self._home_ip[r]}
                # the first link (the hero image/button) draws most clicks
                out.append((tc, "click", {**click, "url": links[0 if rnd() < 0.6 else
                                                                 int(rnd() * len(links))]},
                            False, False))
                if rnd() < 0.15:
                    out.append((tc + int(40_000 * math.exp(gauss())), "click",
                                {**click, "url": links[int(rnd() * len(links))]}, False, False))
                if rnd() < m.convert_p:
                    goal: dict = {"goal": m.goal}
                    if profile.value_median:  # some goals (a verified account) carry no value
                        goal["value"] = round(profile.value_median * math.exp(0.6 * gauss()), 2)
                        goal["currency"] = profile.currency
                    later = 30_000 if rnd() < 0.5 else 1_200_000  # checkout now, or later
                    out.append((tc + 5000 + int(later * math.exp(0.9 * gauss())), "conversion",
                                goal, False, rnd() < 0.6))
            if rnd() < 0.01:
                out.append((to + 5000 + int(30_000 * math.exp(gauss())), "unsubscribe",
                            None, True, False))
            if rnd() < 0.004 * (2.0 if m.flow_id else 1.0):
                out.append((to + int(120_000 * math.exp(gauss())), "reply",
                            _reply_text(r + to // 1000), False, False))
        elif rnd() < 0.0015:  # one-click List-Unsubscribe straight from the inbox
            out.append((td + self._open_delay(rng, td, r, False), "unsubscribe", None, True,
                        False))
        complaint_p = 0.015 if incident else profile.complaint_rate
        if rnd() < complaint_p:
            tq = (to if opened else td) + int(60_000 * math.exp(1.5 * gauss()))
            out.append((tq, "complaint", None, True, False))
        return out

    def _open_delay(self, rng: random.Random, td: int, r: int, expected: bool) -> int:
        """Milliseconds from delivery to a genuine open: right away for readers who get a
        notification or wait for this mail, soon after, or at the reader's usual hour."""
        x = rng.random()
        if x < 0.8 and (self._notified[r] or expected):
            return 5000 + int(30_000 * math.exp(0.8 * rng.gauss()))   # median 35 s
        if x < 0.5:
            return 5000 + int(360_000 * math.exp(1.2 * rng.gauss()))  # median 6 minutes
        due = (self._hour[r] * _MS_PER_HOUR - td % _MS_PER_DAY) % _MS_PER_DAY
        return due + int(rng.random() * _MS_PER_HOUR) + 30_000

    def _open_extra(self, r: int, rnd) -> dict[str, str]:
        ua = self._open_ua[r]
        if ua is _UA_GMAIL_PROXY:
            ip = f"{_GOOGLE_PROXY_NETS[int(rnd() * 4)]}{int(rnd() * 254) + 1}"
        elif ua is _UA_YAHOO_PROXY:
            ip = f"{_YAHOO_PROXY_NETS[int(rnd() * 2)]}{int(rnd() * 256)}.{int(rnd() * 254) + 1}"
        else:
            ip = self._home_ip[r]
        return {"user_agent": ua, "ip": ip}

    def _smtp(self, s: int, dialect: str, kind: str, ip: str, rnd, bounce: bool = True) -> dict:
        """SMTP reply fields; about half the ESP bounce webhooks carry their own bounce kind."""
        with_kind = bounce and rnd() < 0.5
        key = (s, dialect, kind, ip, with_kind)
        extra = self._smtp_cache.get(key)
        if extra is None:
            code, status, text = _REPLIES[dialect][kind]
            extra = {"smtp_code": code, "smtp_status": status,
                     "diagnostic": text.replace("{ip}", ip)}
            if with_kind:
                extra["bounce_kind"] = _BOUNCE_KIND[kind]
            self._smtp_cache[key] = extra
        return extra

    # --- the event stream ---------------------------------------------------------------
    def events(self, rate: float, seconds: float) -> Iterator[GeneratedEvent]:
        """Yield about `rate` events per second of event time for `seconds`, in time order.

        Follow-ups (opens, clicks, ...) that would fall after the window are not emitted.
        """
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be positive, got {rate}")
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be a finite, non-negative number, got {seconds}")
        start = int(round(self.start * 1000))
        end = start + int(seconds * 1000)
        incident_from = start + int(seconds * 1000 / 3) if self._incident_sender >= 0 else end
        self._smtp_cache: dict[tuple, dict] = {}
        per_message = self._events_per_message(start, end, incident_from)
        mean_gap = 1000.0 * per_message / rate  # ms between two sends
        return self._stream(start, end, incident_from, mean_gap)

    def _choose(self, rnd, t: int, incident_from: int) -> tuple[int, _Mailing, int, int, bool]:
        """Who sends what to whom at `t`: (sender, mailing, variant, recipient, incident?)."""
        cum = self._sender_cum
        s = bisect_right(cum, rnd() * cum[-1])
        mcum = self._mailing_cum[s]
        m = self._mailings[s][bisect_right(mcum, rnd() * mcum[-1])]
        v = int(rnd() * len(m.variants)) if m.variants else 0
        members = self._lists[s]
        r = members[int(rnd() * len(members))]
        incident = (s == self._incident_sender and t >= incident_from
                    and self._domain_ix[r] in self._incident_domains)
        return s, m, v, r, incident

    def _events_per_message(self, start: int, end: int, incident_from: int) -> float:
        """How many events one send yields inside the window, averaged by a quick dry run."""
        rng = random.Random(self.seed * 7919 + 13)
        rnd = rng.random
        n = 2000
        total = 0
        span = end - start
        for _ in range(n):
            t = start + int(rnd() * span)
            s, m, v, r, incident = self._choose(rnd, t, incident_from)
            total += 1
            if r not in self._suppressed0:
                total += sum(1 for p in self._plan(rng, t, s, m, v, r, incident) if p[0] < end)
        return total / n

    def _stream(self, start: int, end: int, incident_from: int,
                mean_gap: float) -> Iterator[GeneratedEvent]:
        rng = random.Random(self.seed)
        rnd = rng.random
        expo = rng.expovariate
        dumps = orjson.dumps
        topics = TOPIC_BY_TYPE
        tag = self._tag
        ts_text = _TimestampText()
        z_text, offset_text = ts_text.z, ts_text.offset
        push, pop = heapq.heappush, heapq.heappop
        heap: list = []
        suppressed: dict[int, str] = {}  # sender * population + recipient -> reason
        population = len(self._addresses)
        global_suppressed = self._suppressed0
        profiles = self._profiles
        addresses, keys = self._addresses, self._keys
        seq = 0
        n_events = 0
        n_messages = 0
        next_send = float(start)

        def encode(ts: int, etype: str, base: dict, extra: dict | None) -> bytes:
            nonlocal n_events
            x = rnd()
            if x < 0.8:
                tsv: str | int = z_text(ts)
            elif x < 0.9:
                tsv = offset_text(ts, _OFFSETS[int(x * 100) % 5])
            else:
                tsv = ts
            d = {"type": etype, "ts": tsv, **base, "event_id": f"{tag}-{n_events:010x}"}
            n_events += 1
            if extra:
                d.update(extra)
            return dumps(d)

        while True:
            if heap and (heap[0][0] < next_send or next_send >= end):
                ts, _, etype, base, key, pair, extra, suppress = pop(heap)
                if suppress:
                    suppressed.setdefault(pair, _SUPPRESSED_BECAUSE[etype])
                yield GeneratedEvent(ts / 1000, topics[etype], key,
                                     encode(ts, etype, base, extra))
                continue
            if next_send >= end:
                return
            t = int(next_send)
            next_send += expo(1.0) * mean_gap
            s, m, v, r, incident = self._choose(rnd, t, incident_from)
            n_messages += 1
            profile = profiles[s]
            base = {"sender": profile.domain, "recipient": addresses[r],
                    "message_id": f"<{t:x}.{n_messages:x}.{tag}@{profile.domain}>"}
            if m.flow_id:
                base["flow_id"] = m.flow_id
            base["campaign_id"] = m.campaign_id
            if m.variants:
                base["variant"] = m.variants[v]
            key = keys[r]
            pair = s * population + r
            reason = global_suppressed.get(r) or suppressed.get(pair)
            if reason:
                yield GeneratedEvent(t / 1000, topics["dropped"], key,
                                     encode(t, "dropped", base, {"reason": reason}))
                continue
            yield GeneratedEvent(t / 1000, topics["sent"], key, encode(t, "sent", base, None))
            base_no_mid = None
            self._last_truth = None
            plan = self._plan(rng, t, s, m, v, r, incident)
            if self._last_truth is not None:
                self._record_truth(base["message_id"], end)
            for ts, etype, extra, suppress, no_mid in plan:
                if ts >= end:
                    continue
                b = base
                if no_mid:
                    if base_no_mid is None:
                        base_no_mid = {k: val for k, val in base.items() if k != "message_id"}
                    b = base_no_mid
                seq += 1
                push(heap, (ts, seq, etype, b, key, pair, extra, suppress))


def open_probability(td: int, propensity: float, pref_hour: int, engagement: float,
                     lift: float, expected: bool, incident: bool) -> float:
    """P(a genuine open) of one delivered message (what `_plan` draws against)."""
    hour = td // _MS_PER_HOUR % 24
    gap = abs(hour - pref_hour)
    gap = min(gap, 24 - gap)
    p_open = (propensity * engagement * lift
              * (1.3 if gap <= 1 else 1.05 if gap <= 3 else 0.8))
    if expected:  # they just signed up or left a cart: even dormant readers look
        p_open = min(0.9, 2 * p_open + 0.2)
    if incident:
        p_open *= 0.4  # most of it lands in the spam folder
    return p_open


# Quadrature for the lognormal delays: standard normal nodes and weights; uniform midpoints.
_GH_Z, _GH_W = np.polynomial.hermite_e.hermegauss(24)
_GH_W = _GH_W / _GH_W.sum()
_UNIFORM = (np.arange(12) + 0.5) / 12


def _phi(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz and Stegun 7.1.26: error under 1e-7)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (
        -1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def engagement_truth(td: int, due: int, propensity: np.ndarray, pref_hour: np.ndarray,
                     notified: np.ndarray, engagement: float, lift: float, expected: bool,
                     flow: bool, incident: bool) -> np.ndarray:
    """True P(a genuine engagement - human click or reply - before `due`) of a message
    delivered at `td`, per recipient (arrays), as `_plan` and `_open_delay` draw it:
    P(open) times the chance that a click (or reply) follows the open before `due`,
    over the open delay's mixture (quadrature). Left out, so the label can differ:
    conversions credited to this message from a click on an *earlier* message (rare),
    and the tracker calling a human click a bot (or the reverse).

    >>> p = engagement_truth(0, 86_460_000, np.array([0.5, 0.01]), np.array([0, 12]),
    ...                      np.array([True, False]), 1.0, 1.0, False, False, False)
    >>> [round(float(x), 4) for x in p]
    [0.1547, 0.0005]
    """
    hour = td // _MS_PER_HOUR % 24
    gap = np.abs(hour - pref_hour)
    gap = np.minimum(gap, 24 - gap)
    p_open = propensity * engagement * lift * np.where(gap <= 1, 1.3,
                                                       np.where(gap <= 3, 1.05, 0.8))
    if expected:
        p_open = np.minimum(0.9, 2 * p_open + 0.2)
    if incident:
        p_open = p_open * 0.4
    click = np.minimum(0.5, 0.06 + 0.35 * propensity)
    reply = 0.004 * (2.0 if flow else 1.0)
    window = float(due - td)

    def engaged_after(delay: np.ndarray) -> np.ndarray:
        """P(click or reply before `due` | open `delay` ms after delivery), per node."""
        rem = window - delay
        c = np.where(rem > 4000, _phi(np.log(np.maximum(rem - 4000, 1.0) / 20_000)), 0.0)
        q = np.where(rem > 0, _phi(np.log(np.maximum(rem, 1.0) / 120_000)), 0.0)
        return 1 - (1 - click[:, None] * c) * (1 - reply * q)

    fast = engaged_after(np.broadcast_to(5000 + 30_000 * np.exp(0.8 * _GH_Z),
                                         (len(propensity), len(_GH_Z)))) @ _GH_W
    soon = engaged_after(np.broadcast_to(5000 + 360_000 * np.exp(1.2 * _GH_Z),
                                         (len(propensity), len(_GH_Z)))) @ _GH_W
    due_h = (pref_hour * _MS_PER_HOUR - td % _MS_PER_DAY) % _MS_PER_DAY
    later = engaged_after(due_h[:, None] + _UNIFORM * _MS_PER_HOUR + 30_000).mean(axis=1)
    quick = np.asarray(notified, dtype=bool) | expected
    after_open = np.where(quick, 0.8 * fast + 0.2 * later, 0.5 * soon + 0.5 * later)
    return p_open * after_open


def _pick(options: tuple[tuple[str, float], ...], u: float) -> str:
    """The option whose cumulative weight first exceeds `u` (in [0, 1))."""
    total = sum(w for _, w in options)
    acc = 0.0
    for value, weight in options:
        acc += weight / total
        if u < acc:
            return value
    return options[-1][0]


class _TimestampText:
    """RFC 3339 text for epoch milliseconds, caching the per-second part (the slow bit)."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def _second(self, sec: int) -> str:
        text = self._cache.get(sec)
        if text is None:
            if len(self._cache) > 65_536:
                self._cache.clear()
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            self._cache[sec] = text
        return text

    def z(self, ms: int) -> str:
        """UTC with a "Z": ``z(1795255203120) == '2026-11-21T10:00:03.120Z'``."""
        sec, milli = divmod(ms, 1000)
        return f"{self._second(sec)}.{milli:03d}Z"

    def offset(self, ms: int, offset: tuple[int, str]) -> str:
        """Local time at a UTC offset: ``'2026-11-21T11:00:03.120+01:00'``."""
        sec, milli = divmod(ms, 1000)
        return f"{self._second(sec + offset[0] * 60)}.{milli:03d}{offset[1]}"


def write_jsonl(events: Iterable[GeneratedEvent | tuple], path: str | os.PathLike[str]) -> int:
    """Write each event's value as one line of `path`; return how many were written."""
    count = 0
    with open(path, "wb") as out:
        write = out.write
        for event in events:
            write(event[-1])
            write(b"\n")
            count += 1
    return count
