"""Bounce and deferral classification: hard, soft, block, rate_limit, other.

First cut for the walking skeleton: the RFC 3463 enhanced status code and a
few unambiguous diagnostic phrases. The provider-specific patterns and the
online text classifier for unknown wording come with the throttling work.
Reputation and policy blocks are checked *before* "user unknown" wording, so
an IP block is never recorded as a bad address.

>>> classify_bounce(550, "5.1.1", "user unknown")
'hard'
>>> classify_bounce(550, "5.7.1", "Service unavailable, Client host blocked using Spamhaus")
'block'
>>> classify_bounce(421, "4.7.28", "rate limited, try again later")
'rate_limit'
>>> classify_bounce(452, "4.2.2", "mailbox full")
'soft'
"""

from __future__ import annotations

BOUNCE_CLASSES = ("hard", "soft", "block", "rate_limit", "other")

_RATE_LIMIT_STATUSES = frozenset({"4.7.28", "4.7.650", "4.7.0", "4.4.5"})
_RATE_LIMIT_WORDS = ("rate limit", "rate-limit", "too many", "try again later", "throttl")
_BLOCK_WORDS = ("blocked", "blocklist", "blacklist", "spamhaus", "reputation", "policy",
                "spam", "dmarc", "dkim", "spf", "not authorized", "s3150")
_HARD_WORDS = ("user unknown", "no such user", "does not exist", "unknown user",
               "mailbox unavailable", "invalid recipient", "no mailbox", "disabled")


def classify_bounce(smtp_code: int, smtp_status: str, diagnostic: str,
                    bounce_kind: str = "") -> str:
    text = diagnostic.lower()
    status = smtp_status.strip()
    if status in _RATE_LIMIT_STATUSES or any(w in text for w in _RATE_LIMIT_WORDS):
        return "rate_limit"
    if status.startswith(("5.7.", "4.7.")) or any(w in text for w in _BLOCK_WORDS):
        return "block"
    if status.startswith(("5.1.", "5.2.1")) or any(w in text for w in _HARD_WORDS):
        return "hard"
    if status.startswith("4.") or 400 <= smtp_code < 500 or "full" in text:
        return "soft"
    if status.startswith("5.") or 500 <= smtp_code < 600:
        return "hard" if status.startswith("5.1.") else "other"
    kind = bounce_kind.lower()
    if kind in ("permanent", "hard"):
        return "hard"
    if kind in ("transient", "soft"):
        return "soft"
    return "other"
