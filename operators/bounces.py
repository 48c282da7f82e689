"""Bounce and deferral classification: hard, soft, block, rate_limit, other.

Every bounce or deferral is read in three steps, most certain first:

1. **Patterns** on the diagnostic text: wording of the big mailbox providers
   (Gmail, Microsoft, Yahoo/AOL, iCloud, GMX/web.de, T-Online), enterprise
   gateways (Proofpoint, Mimecast, Barracuda), blocklists and authentication
   checks. Confidence 1.0.
2. **The enhanced status code** (RFC 3463 ``x.y.z``; taken from the diagnostic
   when ``smtp_status`` is empty) when the code itself names the cause, e.g.
   5.1.1, 5.7.x, 4.7.28. Confidence 0.6-0.9.
3. **An online text model** (`BounceClassifier` only): River's multinomial
   naive Bayes on the words of the diagnostic (plus the reply and status class),
   trained on the diagnostics whose class a pattern made certain. It reads
   wording no pattern knows and reports its probability as the confidence.

What is left falls back to the provider's own bounce kind, then to the reply
class (a 4xx with unknown wording is a temporary, "soft", failure), else "other".

Order matters, and it is the point of this module: reputation, policy,
authentication and rate-limit wording is checked *before* "user unknown"
wording, so an IP block is never recorded as a bad address (Microsoft's
"550 5.7.1 ... block list (S3150)" is a block, and suppressing the address
would lose a good contact). Only an explicit statement that the address does
not exist makes a bounce hard, and then even under a policy code: some servers
answer unknown users with "550 5.7.1 ... Recipient address rejected: User
unknown", and with no block wording in the reply the server's own words win.
The generic RFC 5321 phrase "mailbox unavailable" is hard only when the status
code does not say policy (5.7.x). Hard wording in a temporary (4xx) reply is
soft: the server may accept the address tomorrow. Authentication failures are
blocks even when the reply says "rate limited" (Gmail's 421-4.7.27): slowing
down does not fix SPF. Sender-side rejections (the sender's address, domain or
HELO name, x.1.7/x.1.8) are blocks even when they say "does not exist"; a full
mailbox (x.2.2, quota, storage) is soft even beside "mailbox unavailable";
connection-level refusals (421 service not available, "refused to talk to me",
connection refused/reset/timed out) are blocks, "too many connections" a rate limit.

Whatever step decides, `_guard` applies the guarantees last: a "hard" verdict of
the status code, the provider's kind or the model beside sender, policy,
reputation, authentication or content wording is a block. The verdict's `source`
names the evidence: "pattern:<rule>" (plus "+<guard>" when a guarantee changed
the rule's class), "status", "kind", "model" or "none".

>>> classify_bounce(550, "5.1.1", "550-5.1.1 The email account that you tried to reach does "
...                 "not exist.")
'hard'
>>> classify_bounce(550, "5.7.1", "550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't "
...                 "sent. Please contact your Internet service provider since part of their "
...                 "network is on our block list (S3150).")
'block'
>>> classify_bounce(451, "", "451 4.7.650 The mail server [203.0.113.9] has been temporarily "
...                 "rate limited due to IP reputation.")
'rate_limit'
>>> classify_bounce(451, "4.7.1", "Greylisted, please try again in 5 minutes")
'soft'
>>> classify_bounce(550, "", "550 5.1.1 <jane@example.org>: Recipient address rejected: "
...                 "User unknown")
'hard'

The classifier says where each answer came from:

>>> clf = BounceClassifier(min_training=3)
>>> clf.classify(554, "5.7.1", "Client host [192.0.2.1] blocked using zen.spamhaus.org")
BounceVerdict(bounce_class='block', confidence=1.0, source='pattern:blocklist')
>>> clf.classify(550, "5.2.1", "Recipient cannot receive mail at this time")
BounceVerdict(bounce_class='hard', confidence=0.8, source='status')
>>> clf.classify(550, "", "Rejected: our sentinel dislikes the sending host")
BounceVerdict(bounce_class='other', confidence=0.0, source='none')
>>> for code, text in [(550, "550 5.1.1 user unknown in local recipient table"),
...                    (554, "554 client host [192.0.2.1] rejected, listed at zen.spamhaus.org"),
...                    (552, "552 mailbox full, quota exceeded"),
...                    (554, "554 client host [192.0.2.2] blocked")]:
...     _ = clf.classify(code, "", text)
>>> verdict = clf.classify(554, "", "554 client host [192.0.2.7] rejected by local filter")
>>> verdict.bounce_class, verdict.source, verdict.confidence > 0.6
('block', 'model', True)
"""

from __future__ import annotations

import copy
import math
import re
from functools import lru_cache
from typing import Any, NamedTuple

from river import feature_extraction, naive_bayes

BOUNCE_CLASSES = ("hard", "soft", "block", "rate_limit", "other")


class BounceVerdict(NamedTuple):
    """A class, how sure it is, and which step decided."""

    bounce_class: str
    confidence: float  # 1.0 for patterns; the table value for status codes; p for the model
    source: str  # "pattern:<rule>[+<guard>]" | "status" | "kind" | "model" | "none"


# --- 1. patterns ---------------------------------------------------------------------------
# Named rules (name, class, alternatives) in priority order: the first rule with a match
# decides, and its name is the verdict's evidence (`source` "pattern:<name>"). Text is
# lower-cased once. "hard?" marks the generic wording of RFC 5321 ("mailbox unavailable",
# "recipient rejected") that servers also use for policy rejections: it is hard only when
# the status code does not name a policy reason (see `_guard`).
#
# The order encodes who is at fault. The recipient's temporary state (greylisting, a
# recipient receiving too fast, a full mailbox) and the sender's own problems
# (authentication, sender address, HELO, reputation, policy, content, connection refusals)
# are read before any "address does not exist" wording, because those replies quote the
# *sender's* address or domain as often as the recipient's ("Domain of sender address ...
# does not exist", "Sender address rejected: ... User unknown"): only an explicit statement
# about the recipient's address makes a bounce hard.
_PATTERN_GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # Greylisting is a deliberate first-time deferral: it passes on retry (not a block,
    # even though servers send it with 4.7.1).
    ("greylisting", "soft", (r"gr[ae]y-? ?list", r"postgrey")),
    # A recipient who receives too much mail (Gmail 4.2.1/5.2.1, iCloud "Messages to <rcpt>
    # deferred due to excessive volume", Exchange 5.2.121/122) is that recipient's
    # condition: no reason to slow the sender down for the whole provider, nor to drop it.
    ("recipient_receiving_rate", "soft", (
        r"receiving mail (?:too quickly|at a rate)", r"messages to \S+ deferred",
        r"receive limit", r"(?:can|could) receive per (?:hour|day|minute)")),
    # Microsoft 365 directory-based edge blocking: "Access denied" for an address that is
    # not in the tenant's directory (documented as "recipient doesn't exist").
    ("microsoft_directory_edge_blocking", "hard", (
        r"as\(201806281\)", r"5\.4\.1 (?:\S+ )?recipient address rejected: access denied")),
    # Authentication, encryption and reverse-DNS failures: fixing the setup, not slowing
    # down, is what helps, so these win over "rate limited" in the same reply (Gmail
    # 421-4.7.26/27/30/32). A bare "SPF domain"/"DKIM domain" names the domain a rate
    # applies to (Gmail 4.7.28), so SPF and DKIM count only with a verdict word.
    ("authentication", "block", (
        r"\b(?:spf|dkim)\b[ :=-]*(?:check|fail|authentication|verification|validation|"
        r"record|violation|policy|signature|hard ?fail|soft ?fail|none|perm ?error|"
        r"temp ?error|does not pass|do not pass|didn't pass|did not pass|not pass|"
        r"is not|are not|missing|invalid)",
        r"(?:pass|passes|passing|failed|fails|fail|with|by|missing|no|invalid|valid) "
        r"(?:the )?(?:spf|dkim)\b", r"sender policy framework", r"domainkeys",
        r"\bdmarc\b", r"unauthenticated", r"not (?:be )?authenticated",
        r"authentication (?:check|fail|required|level|result)",
        r"(?:pass|passing) authentication", r"authenticate with", r"\bptr\b",
        r"reverse (?:dns|lookup|hostname)", r"\brdns\b", r"ip name lookup failed",
        r"cannot find your (?:reverse )?hostname", r"(?:\bnot|n't) (?:be )?aligned\b",
        r"authenticated (?:spf|dkim)\b", r"\btls\b",
        r"starttls", r"must issue a starttls")),
    # The sender's own address, domain, HELO name or account: never the recipient's
    # fault, whatever "does not exist" or "user unknown" the reply quotes about it.
    ("sender_side", "block", (
        r"sender (?:address|domain|verify|verification|mx|ip|host|rejected|denied|"
        r"blocked|refused|unknown|invalid|not (?:allowed|permitted|authorized)|"
        r"does not exist|doesn't exist|not found)",
        r"(?:domain|address) of (?:the )?sender", r"sender'?s (?:e-?mail )?(?:address|domain)",
        r"sending domain", r"envelope[- ]sender", r"envelope from", r"return[- ]path",
        r"mail from (?:address|domain|ip\b)", r"after mail from", r"reply to mail from",
        r"(?:invalid|bad|unknown|rejected) sender", r"sender is not",
        r"domain (?:isn't|is not) (?:registered|allowed)", r"envelope sender domain",
        r"\b(?:helo|ehlo)\b (?:command|name|hostname|required|rejected)",
        r"(?:invalid|bad) (?:helo|ehlo)\b", r"fully-qualified hostname",
        r"tenantattribution", r"not owned by user", r"allowed-senders",
        r"mail from your domain",
        # Exim's sender callout: "Verification failed for <sender> ... Sender verify failed"
        r"verification failed for")),
    # The receiving host is not responsible for the domain: neither the address's fault
    # nor the sender's reputation.
    ("relay_denied", "other", (
        r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed))",
        r"unable to relay", r"we do not relay", r"allowed rcpthosts")),
    ("rate_limit", "rate_limit", (
        r"rate[- ]?limit", r"rate[- ]controll?ed", r"unusual rate", r"throttl",
        r"too ?many ?(?:(?:concurrent|simultaneous|parallel|smtp|open|incoming) )*"
        r"(?:connections|sessions|messages|mails|emails|recipients|rcpt|requests)",
        r"connection (?:rate|limit|count)", r"connections? per",
        r"maximum (?:number of )?(?:(?:concurrent|simultaneous) )*"
        r"(?:server )?connections",
        r"(?:sending|send|message|messages) (?:rate|limit|quota)",
        r"(?:relay|sending) limit", r"limit exceeded for (?:user|customer|sender)",
        r"email quota exceeded", r"daily (?:user )?(?:sending )?(?:quota|limit)",
        r"thread limit", r"too (?:quickly|fast)",
        r"slow down", r"unexpected volume", r"too much mail", r"server busy",
        r"mail flood", r"\[tss0[1-8]\]", r"\[ts0[12]\]", r"\bdyn:t1\b", r"\brp-00\d\b",
        r"limits for how many messages", r"deferred due to user complaints")),
    # Reputation, block lists, policy and content filters: the sender's problem.
    ("provider_block_code", "block", (
        r"\bs3\d{3}\b", r"\bas3\d{3}\b", r"\b(?:sc|ou|dy)-00\d\b", r"\[(?:cs|hm)0\d\]",
        r"\[ts03\]",
        r"\[tss09\]", r"\[tss1\d\]", r"\[bl\d\d\]", r"\[ph0\d\]", r"\[rl0\d\]",
        r"\b(?:rtr|rly):", r"\(bl\)", r"tosa@rx\.t-online\.de", r"\bip=\S+ - ",
        r"\bofr_?(?:506|999|107|535)\b", r"\bipbl\d", r"\bbl0000\d\d")),
    ("blocklist", "block", (
        r"block ?-?list", r"black ?-?list", r"deny ?-?list", r"\bblocked\b", r"\bbanned\b",
        r"\blisted (?:at|in|on|by)\b", r"\bis listed\b", r"\b(?:address|ip) listed\b",
        r"\bin an? rbl\b", r"\brbl\b", r"dnsbl", r"spamhaus", r"spamcop", r"sorbs",
        r"barracuda ?(?:reputation|central)", r"cloudmark", r"\bcbl\b", r"abuseat",
        r"uceprotect", r"ipcheck\.proofpoint", r"blackhole")),
    ("reputation_or_content", "block", (
        r"reputation", r"spam", r"unsolicited", r"suspicious", r"phish", r"malware",
        r"virus", r"infected", r"illegal attachment", r"content (?:rejected|filter|policy)",
        r"unacceptable content", r"namespace mining", r"complaints",
        r"not (?:rfc ?\d+ )?compliant")),
    ("policy", "block", (
        r"client host rejected", r"may not be mail exchanger",
        r"prohibit", r"polic(?:y|ies)", r"administrative prohibition",
        r"not (?:authorized|allowed|permitted)", r"notauthorized", r"access denied",
        r"will not accept", r"(?:message|messages|traffic|mail|email|connections) "
        r"(?:will )?not (?:be )?accepted", r"are not accepted",
        r"not accept(?:ing|ed)? (?:mail|messages|email|connections) from",
        r"message refused", r"delivery not authorized", r"mail rejected",
        r"too many (?:invalid|unknown|bad) recipients", r"excessive unknown recipients",
        r"dynamic(?:ally)?[- ](?:assigned|ip)", r"dial-? ?up", r"residential",
        r"nemesis esmtp service not available", r"no smtp service", r"spoof",
        r"envelope (?:blocked|rejected)", r"security (?:policy|policies|issue|reason)",
        r"unregistered domain", r"tenant has exceeded", r"external forwarding",
        r"invalid credentials for relay", r"not accepting (?:connections|messages|mail)")),
    # Connection-level refusals: the receiving side will not talk to this sender now.
    # Not the address's fault; a block the throttle must see, not a soft deferral.
    ("connection_refused", "block", (
        r"connection (?:refused|reset|timed? ?out|died|dropped|lost|closed|rejected)",
        r"lost connection", r"closed (?:the )?connection", r"connection was closed",
        r"refused to talk", r"(?:conversation|session) with \S+ timed out",
        r"read error", r"socket ?error",
        r"service (?:is )?(?:currently )?(?:temporarily )?(?:unavailable|not available)",
        r"service refused", r"timeout - closing", r"total timeout",
        r"timeout exceeded(?<!retry timeout exceeded)")),
    # A host that could not be reached, or a message that expired in the queue, is a
    # temporary failure: nobody refused this sender (an explicit refusal, above, is a block).
    ("unreachable_or_expired", "soft", (
        r"(?:unable|could not|couldn't|failed|wasn't able|was not able|not able) to "
        r"(?:connect|establish|open)", r"message expired", r"unable to deliver in",
        r"could not send message for", r"cannot send message for")),
    # The recipient's mailbox is full: soft, before any "invalid mailbox" wording around it
    # (mail.ru "invalid mailbox ... unavailable: account is full").
    ("mailbox_full", "soft", (
        r"(?:mailbox|account|inbox|mailfolder|folder|box) (?:is )?(?:currently )?"
        r"(?:full|over ?quota)", r"full (?:mailbox|inbox)", r"(?:mailbox|disk) quota",
        r"quota usage",
        r"mailbox size limit", r"over ?quota", r"overquota", r"quota ?exceed",
        r"quota (?:full|reached)", r"exceeded (?:\S+ )?(?:storage|quota)",
        r"out of storage", r"storage (?:space|full|quota|allocation)",
        r"insufficient (?:system )?(?:storage|disk)", r"disk (?:full|quota|space)",
        r"error writing message: (?:file too large|disk quota)", r"boite du destinataire pleine")),
    ("size_loop_format", "other", (
        r"message (?:size|length) exceed", r"message (?:is )?too (?:large|big)",
        r"(?:message|mail|email) (?:size )?exceeds", r"exceeds (?:the )?(?:fixed )?"
        r"maximum (?:message )?size", r"size exceeds", r"size limit", r"too large",
        r"too big", r"mail loop", r"loop detected", r"routing loop", r"loops back",
        r"too many hops", r"hop count exceeded", r"rfc ?5322", r"rfc ?822", r"malformed",
        r"syntax error", r"auto-?reply", r"out of (?:the )?office")),
    # A lookup or a queue that may succeed later is temporary, whatever follows.
    ("temporary_lookup_or_retry", "soft", (
        r"host not found, try again", r"servfail", r"temporary (?:dns|lookup) failure",
        r"dns (?:timeout|timed out|temporary|query failed)", r"have been failing",
        r"retry time(?:out)? (?:not reached|exceeded)")),
    ("address_unknown", "hard", (
        r"user ?unknown", r"unknown (?:user|recipient|mailbox|address|local part|alias)",
        r"unknown or illegal alias", r"addressee unknown",
        r"no such (?:user|mailbox|recipient|address|account|person|domain)",
        r"(?:does not|doesn't|did not|not) exist", r"recip(?:ient)?notfound",
        r"(?:user|recipient|mailbox|address|account) not found",
        r"not found by smtp address lookup",
        r"invalid (?:recipient|mailbox|address|user|e-?mail)",
        r"not a valid (?:recipient|mailbox|user|address|e-?mail)", r"no mailbox",
        r"destinataire invalide", r"inactive e-?mail address",
        r"(?:doesn't|does not) have an? (?:\S+ )?account", r"user not local",
        r"bad destination mailbox")),
    ("mailbox_disabled", "hard", (
        r"(?:mailbox|account|address|user) (?:has been |is |was )?"
        r"(?:disabled|deactivated|inactive|closed|suspended|deleted|terminated|removed)",
        r"inactive (?:account|mailbox|user)", r"\bis (?:disabled|deactivated|inactive)\b",
        r"mailbox (?:has )?moved", r"no longer (?:active|available|in use|exists)")),
    ("domain_unknown", "hard", (
        r"domain (?:not found|unknown|name not found)", r"host (?:unknown|not found)",
        r"host or domain name not found", r"unroutable", r"unrouteable", r"nxdomain",
        r"non-?existent ?domain", r"find the recipient domain", r"null ?mx",
        r"does not accept mail", r"couldn't find any host")),
    ("mailbox_unavailable", "hard?", (
        r"mailbox (?:unavailable|not available)", r"recipient (?:address )?rejected",
        r"address rejected", r"undeliverable address")),
    ("temporary", "soft", (
        r"temporar", r"try (?:again|later)", r"retry later", r"please retry",
        r"unreachable", r"no route to host", r"expired", r"unable to deliver in",
        r"deferred", r"could not send message for", r"cannot send message for",
        r"system problem", r"local problem", r"queue file write error")),
)


# The regex engine tries every alternative at every position of the text; merging the
# alternatives' common literal prefixes into a trie ("b(?:locked|anned|...)") lets it drop
# most of them after one character: 2.5x faster on real replies, same matches.
_META = frozenset("()[]{}?*+|^$.\\")
_LEADING_GROUP = re.compile(r"(\\b)?\(\?:([^()]*)\)(?![?*+{])")


#: Why an event suppresses its recipient for good (hard bounces only: a block is not the
#: address's fault).
SUPPRESSING = {"complaint": "complaint", "unsubscribe": "unsubscribe"}


def suppression_reason(event_type: str, bounce: BounceVerdict | None) -> str | None:
    """Why an event suppresses its recipient for good, or None. Hard bounces suppress only
    when wording, status code or the provider say so: a guess of the text model never
    costs a contact.

    >>> suppression_reason("unsubscribe", None), suppression_reason("open", None)
    ('unsubscribe', None)
    >>> suppression_reason("bounce", BounceVerdict("hard", 0.6, "model")) is None
    True
    """
    if event_type == "bounce":
        certain = bounce is not None and bounce.source != "model"
        return "hard_bounce" if certain and bounce.bounce_class == "hard" else None
    return SUPPRESSING.get(event_type)


def _expand(alternative: str) -> list[str]:
    """`(?:a|b) x` -> [`a x`, `b x`], so the trie can share what follows the choice."""
    m = _LEADING_GROUP.match(alternative)
    if m is None:
        return [alternative]
    head, tail = m.group(1) or "", alternative[m.end():]
    return [x for choice in m.group(2).split("|") for x in _expand(head + choice + tail)]


def _literal_prefix(alternative: str) -> tuple[list[str], str]:
    r"""Split an alternative into its leading literal tokens (escaped) and the rest.

    A leading word boundary is checked *after* the literal, by a look-behind: "\bspf" and
    "spf(?<!\wspf)" match the same text, but only the second lets the engine scan for its
    first letter instead of trying every position (3x faster on those groups).

    >>> _literal_prefix(r"\bspf\b fail")
    (['s', 'p', 'f', '(?<!\\wspf)'], '\\b fail')
    """
    tokens, i = [], 0
    boundary = alternative.startswith(r"\b")
    if boundary:
        i = 2
    while i < len(alternative):
        char = alternative[i]
        if char == "\\" and i + 1 < len(alternative) and not alternative[i + 1].isalnum():
            token, step = alternative[i:i + 2], 2
        elif char not in _META:
            token, step = re.escape(char), 1
        else:
            break
        if i + step < len(alternative) and alternative[i + step] in "?*+{":
            break  # the literal is quantified: it belongs to the rest
        if boundary:
            if not token.isalnum():
                break  # the look-behind holds for word characters only
            tokens.append(token)
            i += step
            if i >= len(alternative) or not alternative[i].isalnum():
                tokens.append(r"(?<!\w" + "".join(tokens) + ")")
                boundary = False
            continue
        tokens.append(token)
        i += step
    if boundary:  # no word characters to check after: keep the plain boundary
        return [r"\b", *tokens], alternative[i:]
    return tokens, alternative[i:]


def _compile_group(alternatives: tuple[str, ...]) -> re.Pattern[str]:
    trie: dict[str, Any] = {}
    for alternative in (x for a in alternatives for x in _expand(a)):
        tokens, rest = _literal_prefix(alternative)
        node = trie
        for token in tokens:
            node = node.setdefault(token, {})
        node.setdefault("", []).append(rest)

    def emit(node: dict[str, Any]) -> str:
        rests = node.get("", [])
        if "" in rests:
            return ""  # an alternative ends here: a match, whatever could follow
        parts = [token + emit(child) for token, child in node.items() if token] + rests
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return re.compile(emit(trie))


_PATTERNS = tuple((name, cls, _compile_group(alts)) for name, cls, alts in _PATTERN_GROUPS)

# --- 2. the enhanced status code (RFC 3463, RFC 7372 and the providers' own) ---------------
# Subject digit is one of 0-7; the look-arounds keep "4.16.55.1" and IP addresses out.
_ESC = re.compile(r"(?<![\d.])[245]\.\d\.\d{1,3}(?!\d|\.\d)")
_STATUS_EXACT: dict[str, tuple[str, float]] = {
    "5.1.1": ("hard", 0.9), "5.1.2": ("hard", 0.9), "5.1.10": ("hard", 0.9),
    "5.1.3": ("hard", 0.8), "5.1.6": ("hard", 0.8), "5.2.1": ("hard", 0.8),
    "5.4.4": ("hard", 0.8), "5.3.2": ("hard", 0.7),
    "5.1.7": ("block", 0.7), "5.1.8": ("block", 0.7), "4.1.7": ("block", 0.6),
    "4.1.8": ("block", 0.6),
    "5.2.2": ("soft", 0.9), "4.2.2": ("soft", 0.9), "4.2.0": ("soft", 0.6), "4.2.1": ("soft", 0.6),
    "4.4.7": ("soft", 0.8), "5.4.7": ("soft", 0.7),
    "4.7.28": ("rate_limit", 0.9), "4.5.3": ("rate_limit", 0.8), "5.5.3": ("rate_limit", 0.8),
    "4.3.2": ("rate_limit", 0.7), "4.4.5": ("rate_limit", 0.7), "5.4.5": ("rate_limit", 0.7),
    "5.3.4": ("other", 0.9), "5.2.3": ("other", 0.8), "4.4.6": ("other", 0.7),
    "5.4.6": ("other", 0.7), "5.4.14": ("other", 0.7),
    # Gmail's authentication deferrals (2024 sender requirements), RFC 7372 SPF/rDNS codes.
    **{f"4.7.{n}": ("block", 0.9) for n in (23, 24, 25, 26, 27, 29, 30, 32, 40)},
}
# (class digit, subject digit) -> default for codes not listed above. Not here on purpose:
# 5.0.0/4.0.0, 5.1.0, 5.2.0, 5.3.x, 5.4.x, 5.5.x and 4.7.x (4.7.1 is greylisting as often
# as a policy deferral, 4.7.0 is Yahoo's rate limit and Gmail's TLS demand): the model
# reads those.
_STATUS_SUBJECT: dict[tuple[str, str], tuple[str, float]] = {
    ("5", "7"): ("block", 0.8), ("4", "1"): ("soft", 0.6), ("4", "3"): ("soft", 0.6),
    ("4", "4"): ("soft", 0.6), ("5", "6"): ("other", 0.6),
}


def _status_verdict(esc: str) -> BounceVerdict | None:
    hit = _STATUS_EXACT.get(esc)
    if hit is None:
        klass, subject, detail = esc.split(".")
        if klass == "4" and subject == "7" and 500 <= int(detail) < 700:
            hit = ("rate_limit", 0.8)  # Microsoft 4.7.500-699: sending IP throttled
        elif klass == "5" and subject == "4" and 300 <= int(detail) < 400:
            hit = ("soft", 0.6)  # Microsoft 5.4.3xx: expired after DNS/connection failures
        else:
            hit = _STATUS_SUBJECT.get((klass, subject))
            if hit and detail == "0" and klass == "5":
                hit = (hit[0], 0.6)
    return BounceVerdict(hit[0], hit[1], "status") if hit else None


# --- fallbacks: the provider's own kind, then the reply class ------------------------------
_KIND_WORDS: dict[str, tuple[str, float]] = {
    "noemail": ("hard", 0.7), "bademailaddress": ("hard", 0.7), "invalid": ("hard", 0.6),
    "nosuchuser": ("hard", 0.7), "mailboxfull": ("soft", 0.7), "messagetoolarge": ("other", 0.7),
    "contentrejected": ("block", 0.7), "attachmentrejected": ("block", 0.7),
    "block": ("block", 0.7), "blocked": ("block", 0.7), "spamnotification": ("block", 0.6),
    "ratelimit": ("rate_limit", 0.7), "throttled": ("rate_limit", 0.7),
    "hard": ("hard", 0.5), "hardbounce": ("hard", 0.5), "permanent": ("hard", 0.5),
    "soft": ("soft", 0.5), "softbounce": ("soft", 0.5), "transient": ("soft", 0.5),
    "temporary": ("soft", 0.5),
    # Mailgun's "espblock" (the ESP refused to send: an account or IP block, never the
    # address's fault) and Postmark's "DnsError" (the domain's DNS failed: temporary)
    "espblock": ("block", 0.7), "dnserror": ("soft", 0.6),
}
_KIND_SPLIT = re.compile(r"[^a-z]+")


@lru_cache(maxsize=256)
def _kind_verdict(bounce_kind: str) -> BounceVerdict | None:
    """The provider's own classification ("Permanent/NoEmail", "blocked", "soft" ...).

    Its most specific word wins; coarse words (permanent, transient) count least.
    """
    words = [w for w in _KIND_SPLIT.split(bounce_kind.lower()) if w in _KIND_WORDS]
    compact = _KIND_SPLIT.sub("", bounce_kind.lower())
    if compact in _KIND_WORDS:
        words.append(compact)
    if not words:
        return None
    klass, confidence = max((_KIND_WORDS[w] for w in words), key=lambda hit: hit[1])
    return BounceVerdict(klass, confidence, "kind")


def _fallback(smtp_code: int, esc: str, bounce_kind: str) -> BounceVerdict | None:
    if bounce_kind:
        verdict = _kind_verdict(bounce_kind)
        if verdict is not None:
            return verdict
    if esc.startswith("4.") or (not esc and 400 <= smtp_code < 500):
        return BounceVerdict("soft", 0.4, "status")  # temporary, reason unknown
    return None


# --- the rules path ------------------------------------------------------------------------
class _Reading(NamedTuple):
    verdict: BounceVerdict | None  # None: patterns and status code leave it open
    esc: str  # the enhanced status code found ("" if none)
    text: str  # the lower-cased diagnostic


# What the codes and the wording say against a class, applied after every step (pattern,
# status code, provider kind, model): the guarantees of this module live here.
#: Sender-address status codes (RFC 3463 x.1.7 bad sender mailbox, x.1.8 bad sender system).
_SENDER_CODES = frozenset({"5.1.7", "5.1.8", "4.1.7", "4.1.8"})
#: Mailbox full (x.2.2): the recipient's temporary condition, never a bad address.
_FULL_CODES = frozenset({"5.2.2", "4.2.2"})
#: Microsoft 365 4.7.500-699: the sending IP is throttled (also when it says "access denied").
_MS_THROTTLE = re.compile(r"4\.7\.[56]\d\d$")
#: Wording that puts the fault with the sender, its reputation, policy, authentication or
#: content: a "hard" verdict beside it is a block, whatever the code (suppressing on it
#: would lose a good contact). Deliberately broad: a wrong block costs a retry, a wrong
#: hard costs the contact.
_NOT_THE_ADDRESS = _compile_group((
    r"\bsender\b", r"mail from", r"\b(?:helo|ehlo)\b", r"\bspf\b", r"\bdkim\b",
    r"\bdmarc\b", r"authenticat", r"reputation", r"spam", r"\bblock", r"black ?list",
    r"listed", r"polic(?:y|ies)", r"abuse", r"complain", r"\bcontent\b", r"virus",
    r"phish", r"malware", r"prohibit", r"banned", r"unsolicited", r"not authori[sz]ed"))
_BLOCKED = re.compile(r"\bblocked\b|block ?-?list|black ?-?list|\bbanned\b")
_LISTED = re.compile(r"block ?-?list|black ?-?list|\bbanned\b|\blisted (?:at|in|on|by)\b")


def _guard(cls: str, esc: str, smtp_code: int, text: str) -> tuple[str, str]:
    """The class after the module's guarantees, and the guarantee that changed it ("" if none).

    >>> _guard("hard", "5.1.8", 553, "domain of sender address does not exist")
    ('block', 'sender_code')
    >>> _guard("hard", "4.1.1", 450, "user unknown")
    ('soft', 'temporary_reply')
    """
    transient = esc.startswith("4.") if esc else 400 <= smtp_code < 500
    if cls == "hard?":
        if esc.startswith("5.7."):
            return "block", "policy_code"  # "mailbox unavailable" given as a policy reason
        cls = "hard"
    if cls == "block" and esc == "5.4.1" and "recipient address rejected: access denied" in text:
        return "hard", "directory_edge_blocking"  # Microsoft 365: not in the tenant directory
    if cls == "block" and _MS_THROTTLE.match(esc):
        return "rate_limit", "throttle_code"
    if cls == "rate_limit" and (_LISTED if transient else _BLOCKED).search(text):
        # Gmail 550-5.7.28 "... has been blocked"; a deferral that names a block list
        return "block", "listed" if transient else "permanent_block"
    if cls != "hard":
        return cls, ""
    if esc in _FULL_CODES:
        return "soft", "full_mailbox_code"
    if esc in _SENDER_CODES:
        return "block", "sender_code"
    if text and _NOT_THE_ADDRESS.search(text):
        return "block", "not_the_address"
    if transient:
        return "soft", "temporary_reply"  # the server may still accept it: never suppress
    return "hard", ""


@lru_cache(maxsize=1024)
def _pattern_verdict(rule: str, cls: str, guard: str) -> BounceVerdict:
    return BounceVerdict(cls, 1.0, f"pattern:{rule}+{guard}" if guard else f"pattern:{rule}")


def _guarded(verdict: BounceVerdict, esc: str, smtp_code: int, text: str) -> BounceVerdict:
    """A status, kind or model verdict under the same guarantees (its source unchanged)."""
    cls, _ = _guard(verdict.bounce_class, esc, smtp_code, text)
    return verdict if cls == verdict.bounce_class else verdict._replace(bounce_class=cls)


@lru_cache(maxsize=16384)
def _read(smtp_code: int, smtp_status: str, diagnostic: str) -> _Reading:
    text = diagnostic.lower()
    found = _ESC.search(smtp_status) if smtp_status else None
    if found is None and text:
        found = _ESC.search(text)
    esc = found.group(0) if found else ""
    if text:
        for rule, cls, pattern in _PATTERNS:
            if pattern.search(text):
                return _Reading(_pattern_verdict(rule, *_guard(cls, esc, smtp_code, text)),
                                esc, text)
    verdict = _status_verdict(esc) if esc else None
    if verdict is not None:
        verdict = _guarded(verdict, esc, smtp_code, text)
    return _Reading(verdict, esc, text)


def classify_bounce(smtp_code: int, smtp_status: str, diagnostic: str,
                    bounce_kind: str = "") -> str:
    """The bounce class by rules alone: patterns, status code, provider kind, reply class."""
    reading = _read(smtp_code or 0, smtp_status or "", diagnostic or "")
    if reading.verdict is not None:
        return reading.verdict.bounce_class
    verdict = _fallback(smtp_code or 0, reading.esc, bounce_kind or "")
    if verdict is None:
        return "other"
    return _guarded(verdict, reading.esc, smtp_code or 0, reading.text).bounce_class


# --- 3. the online text model --------------------------------------------------------------
_URLS = re.compile(r"(?:https?://|www\.)\S+")
_ADDRESSES = re.compile(r"[^\s<>(\[@]+@[^\s<>)\]]+")
_WORDS_ONLY = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})
_STOP_WORDS = frozenset(
    "a an the to of and or for is are be been was has have had in on at by from with as it its "
    "this that these your you our we us please see visit go more information info http "
    "https www com net org html".split())
_VECTORIZER = feature_extraction.BagOfWords(preprocessor=str, tokenizer=str.split,
                                            ngram_range=(1, 1))
_MAX_WORDINGS = 50_000  # distinct wordings learnt; enough for any real mix of providers


@lru_cache(maxsize=4096)
def _wording(smtp_code: int, esc: str, text: str) -> str:
    """The diagnostic reduced to its words, with the reply and status class as tokens.

    Addresses, IPs, URLs and numbers vary per message and say nothing about the class.
    """
    if "://" in text or "www." in text:
        text = _URLS.sub(" ", text)
    if "@" in text:
        text = _ADDRESSES.sub(" ", text)
    # Words with digits (IPs, queue ids, server names like db5eur03ft040) differ per message.
    words = [w for w in text.translate(_WORDS_ONLY).split()
             if len(w) > 1 and w.isalpha() and w not in _STOP_WORDS]
    reply = f"reply:{smtp_code // 100}xx" if smtp_code else "reply:none"
    status = f"esc:{esc[:3]}" if esc else "esc:none"
    return " ".join((reply, status, *words))


@lru_cache(maxsize=4096)
def _features(wording: str) -> dict[Any, int]:
    return _VECTORIZER.transform_one(wording)


class BounceClassifier:
    """Rules first, then status code, then an online River text model for unknown wording.

    Every verdict a pattern makes certain teaches the model (`learn_one`), once per
    distinct wording so that a flood of one provider's reply does not drown the rest.
    The model answers only when neither patterns nor a specific status code decide, it
    has learnt `min_training` wordings, and its probability reaches `min_confidence`;
    otherwise the provider's bounce kind or the reply class answer, else "other".
    Same sequence of calls, same answers.
    """

    def __init__(self, min_training: int = 50, min_confidence: float = 0.6):
        self.min_training = min_training
        self.min_confidence = min_confidence
        self.model = naive_bayes.MultinomialNB(alpha=1.0)
        self.learnt: set[str] = set()  # wordings already learnt

    @property
    def n_learned(self) -> int:
        return len(self.learnt)

    def classify(self, smtp_code: int, smtp_status: str, diagnostic: str,
                 bounce_kind: str = "") -> BounceVerdict:
        smtp_code = smtp_code or 0
        reading = _read(smtp_code, smtp_status or "", diagnostic or "")
        verdict = reading.verdict
        if verdict is not None:
            if verdict.source.startswith("pattern") and len(self.learnt) < _MAX_WORDINGS:
                wording = _wording(smtp_code, reading.esc, reading.text)
                if wording not in self.learnt:
                    self.learnt.add(wording)
                    self.model.learn_one(_features(wording), verdict.bounce_class)
            return verdict
        probability, consulted = 0.0, False
        if reading.text and len(self.learnt) >= self.min_training:
            consulted = True
            predicted, probability = self._predict(_wording(smtp_code, reading.esc, reading.text))
            if probability >= self.min_confidence:
                # the rules' guarantees hold for the model too: never hard on a temporary
                # reply, nor beside sender, policy or reputation wording
                cls, _ = _guard(predicted, reading.esc, smtp_code, reading.text)
                return BounceVerdict(cls, probability, "model")
        verdict = _fallback(smtp_code, reading.esc, bounce_kind or "")
        if verdict is not None:
            return _guarded(verdict, reading.esc, smtp_code, reading.text)
        return BounceVerdict("other", probability, "model" if consulted else "none")

    def _predict(self, wording: str) -> tuple[str, float]:
        """Most probable class and its probability (ties go to the earlier class)."""
        scores = self.model.joint_log_likelihood(_features(wording))
        if not scores:
            return "other", 0.0
        top = max(scores.values())
        total = sum(math.exp(s - top) for s in scores.values())
        best = max(BOUNCE_CLASSES, key=lambda c: scores.get(c, -math.inf))
        return best, math.exp(scores[best] - top) / total

    def snapshot(self) -> object:
        """Picklable state for recovery (a copy: later learning does not change it)."""
        return {"version": 1, "min_training": self.min_training,
                "min_confidence": self.min_confidence, "model": copy.deepcopy(self.model),
                "learnt": sorted(self.learnt)}

    @classmethod
    def restore(cls, state: Any) -> BounceClassifier:
        classifier = cls(state["min_training"], state["min_confidence"])
        classifier.model = copy.deepcopy(state["model"])
        classifier.learnt = set(state["learnt"])
        return classifier
