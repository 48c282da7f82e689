"""Signed tracking links: tokens, keys and destination checks (pure: no I/O).

A tracking link is `<base>/c/<token>` (click), `/o/<token>` (open pixel) or
`/u/<token>` (unsubscribe). The token carries everything the edge needs (the
message, sender, recipient *hash*, campaign, flow, variant, link index and the
destination), signed with HMAC-SHA-256 under a key id, so the edge keeps no
per-link state and a token nobody signed never redirects.

Token format, version 1 (all integers big-endian), base64url without padding:

    0x01                              version
    kid length (1 byte), kid          ASCII, [A-Za-z0-9_.-]{1,32}
    kind (1 byte)                     c click, o open, u unsubscribe, h honeypot
    tracking (1 byte)                 p person, a aggregate
    link (int32), issued (uint64), expires (uint64; 0 = never)
    7 strings, each 1-byte length + UTF-8 (<= 255 bytes): message_id, sender,
      recipient_hash, recipient_domain, campaign_id, flow_id, variant
    url: 2-byte length + ASCII (<= MAX_URL_CHARS)
    HMAC-SHA-256(secret, "mailflow-link-v1\\0" + all of the above): 32 bytes

Tokens are at most MAX_TOKEN_CHARS characters; `sign` refuses (UnsafeDestination
"too_long") a link that would not fit. The raw recipient address is never in a token.

>>> keys = LinkKeys.parse("k1:0123456789abcdef0123")
>>> claims = LinkClaims("c", "m-1", "news.example", "ab" * 16, "example.org", "spring",
...                     "welcome", "A", 0, "https://shop.example/x?a=1&b=2#top", 1000, 0,
...                     "person")
>>> token = sign(claims, keys)
>>> verify(token, keys, now=2000) == claims
True
>>> track_url("https://t.example", claims, keys).startswith("https://t.example/c/")
True
>>> check_destination("https://bücher.example/a?q=%41#F")
'https://xn--bcher-kva.example/a?q=%41#F'
>>> check_destination("https://good.example@evil.example/")
Traceback (most recent call last):
...
schemas.links.UnsafeDestination: userinfo: credentials before the host are refused
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import unicodedata
from datetime import UTC, date, datetime
from typing import NamedTuple

VERSION = 1
MAX_TOKEN_CHARS = 1600
MAX_URL_CHARS = 1024
MAX_FIELD_BYTES = 255
MIN_SECRET_BYTES = 16
KINDS = ("c", "o", "u", "h")
TRACKING = {"person": b"p", "aggregate": b"a"}
_TRACKING_BACK = {v: k for k, v in TRACKING.items()}
#: Which path each kind is served under; the honeypot is an ordinary-looking click link.
PATHS = {"c": "c", "h": "c", "o": "o", "u": "u"}

_MAC_CONTEXT = b"mailflow-link-v1\x00"
_MAC_LEN = 32
_FIXED = struct.Struct(">ccIQQ")  # kind, tracking, link (+1, unsigned), issued, expires
_KID = re.compile(r"[A-Za-z0-9_.\-]{1,32}")
_B64URL = re.compile(r"[A-Za-z0-9_\-]+")
_ISO_TAIL = re.compile(r"^(?P<secret>.+):(?P<when>\d{4}-\d{2}-\d{2}"
                       r"(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?)$")
_STRING_FIELDS = ("message_id", "sender", "recipient_hash", "recipient_domain",
                  "campaign_id", "flow_id", "variant")
# The smallest well-formed body: version, an empty-ish kid, fixed fields, 7 + 1 lengths.
_MIN_RAW = 1 + 2 + _FIXED.size + 7 + 2 + _MAC_LEN


class LinkClaims(NamedTuple):
    """What a token says. `url` is "" for opens and unsubscribes."""

    kind: str  # "c" click, "o" open pixel, "u" unsubscribe, "h" honeypot
    message_id: str
    sender: str
    recipient_hash: str  # "" when tracking is "aggregate"
    recipient_domain: str
    campaign_id: str
    flow_id: str
    variant: str
    link: int  # link index in the mail (0..), -1 for the pixel / unsubscribe
    url: str  # the validated destination for "c" and "h"; "" otherwise
    issued: int  # epoch seconds
    expires: int  # epoch seconds, 0 = never
    tracking: str  # "person" or "aggregate"


class TokenError(ValueError):
    """A token that must not be honoured; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class UnsafeDestination(ValueError):
    """A destination that is refused at signing; `reason` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class _Key(NamedTuple):
    kid: str
    secret: bytes
    retired_at: int | None  # epoch seconds; verifies until retired_at + grace


class LinkKeys:
    """Signing keys: the first signs, every listed key verifies (retired ones for a grace).

    >>> keys = LinkKeys.parse("new:0123456789abcdef-new,old:0123456789abcdef-old:2026-01-01")
    >>> keys.signing_kid, sorted(keys.kids())
    ('new', ['new', 'old'])
    >>> LinkKeys.parse("k:short")
    Traceback (most recent call last):
    ...
    ValueError: MAILFLOW_TRACK_KEYS: the secret of key 'k' is 5 bytes; at least 16 are needed
    """

    __slots__ = ("_keys", "grace_s", "signing_kid")

    def __init__(self, keys: list[_Key], grace_s: int):
        if not keys:
            raise ValueError("MAILFLOW_TRACK_KEYS: no keys given (expected kid:secret,...)")
        if keys[0].retired_at is not None:
            raise ValueError(f"MAILFLOW_TRACK_KEYS: the first key ({keys[0].kid!r}) signs new "
                             "links and cannot be retired; put a current key first")
        if grace_s < 0:
            raise ValueError("the key grace period must not be negative")
        self._keys = {k.kid: k for k in keys}
        self.signing_kid = keys[0].kid
        self.grace_s = int(grace_s)

    @classmethod
    def parse(cls, spec: str, grace_s: int = 30 * 86400) -> LinkKeys:
        """Read "kid:secret[:retired-at-ISO-date],..." (a secret may itself contain ":")."""
        keys: list[_Key] = []
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            kid, sep, rest = part.partition(":")
            kid = kid.strip()
            if not sep or not rest:
                raise ValueError(f"MAILFLOW_TRACK_KEYS: {kid or part!r} has no secret "
                                 "(expected kid:secret)")
            if not _KID.fullmatch(kid):
                raise ValueError(f"MAILFLOW_TRACK_KEYS: key id {kid!r} must be 1-32 of "
                                 "A-Z a-z 0-9 _ . -")
            retired_at = None
            tail = _ISO_TAIL.match(rest)
            if tail:
                rest, retired_at = tail["secret"], _epoch(tail["when"], kid)
            secret = rest.encode("utf-8")
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"MAILFLOW_TRACK_KEYS: the secret of key {kid!r} is "
                                 f"{len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed")
            if any(k.kid == kid for k in keys):
                raise ValueError(f"MAILFLOW_TRACK_KEYS: key id {kid!r} is listed twice")
            keys.append(_Key(kid, secret, retired_at))
        return cls(keys, grace_s)

    def kids(self) -> list[str]:
        return list(self._keys)

    def key(self, kid: str) -> _Key | None:
        return self._keys.get(kid)

    def __repr__(self) -> str:  # never print secrets
        return f"LinkKeys(signing={self.signing_kid!r}, kids={self.kids()!r})"


def _epoch(when: str, kid: str) -> int:
    try:
        if "T" in when:
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        else:
            moment = datetime.combine(date.fromisoformat(when), datetime.min.time(), UTC)
    except ValueError as exc:
        raise ValueError(f"MAILFLOW_TRACK_KEYS: retirement date {when!r} of key {kid!r} "
                         f"is not an ISO date ({exc})") from None
    return int(moment.timestamp())


# --- destinations ---------------------------------------------------------------------

# Characters that may never appear anywhere in a destination. Browsers strip some of them
# (tab, newline) and then land somewhere else than a checker believed; we refuse instead.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp"}
_ALT_DOTS = "\u3002\uff0e\uff61\u2024\ufe52"
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?")
_PORT = re.compile(r"[0-9]{1,5}")
_NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)")
_OCTET = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])")


def check_destination(url: str) -> str:
    """The URL to redirect to, or UnsafeDestination.

    http/https only, a host and nothing before it, IDN hosts as punycode, the scheme and host
    lower-cased; the path, query string and fragment are kept exactly (only non-ASCII
    characters there are percent-encoded as UTF-8, as a browser would send them).

    >>> check_destination("HTTPS://Shop.Example:8443/p?utm_source=x&a=%2F#frag")
    'https://shop.example:8443/p?utm_source=x&a=%2F#frag'
    >>> check_destination("//evil.example/")
    Traceback (most recent call last):
    ...
    schemas.links.UnsafeDestination: protocol_relative: a destination must name its scheme
    """
    if not isinstance(url, str) or not url:
        raise UnsafeDestination("empty", "no destination")
    if len(url) > MAX_URL_CHARS:
        raise UnsafeDestination("too_long", f"longer than {MAX_URL_CHARS} characters")
    ascii_clean = url.isascii() and url.isprintable() and " " not in url  # the usual case
    for ch in "" if ascii_clean else url:
        if ord(ch) < 0x21 or ord(ch) == 0x7F or (
                ord(ch) > 0x7F and unicodedata.category(ch) in _FORBIDDEN_CATEGORIES):
            raise UnsafeDestination("control_chars", f"contains U+{ord(ch):04X}")
    if "\\" in url:
        raise UnsafeDestination("backslash", "backslashes are read as slashes by browsers")
    if url.startswith("//"):
        raise UnsafeDestination("protocol_relative", "a destination must name its scheme")
    scheme_match = _SCHEME.match(url)
    if not scheme_match:
        raise UnsafeDestination("scheme", "not an absolute http(s) URL")
    scheme = scheme_match.group(1).lower()
    if scheme not in ("http", "https"):
        raise UnsafeDestination("scheme", f"scheme {scheme!r} is not http or https")
    rest = url[scheme_match.end():]
    if not rest.startswith("//"):
        raise UnsafeDestination("scheme", "expected '//' after the scheme")
    rest = rest[2:]
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        raise UnsafeDestination("userinfo", "credentials before the host are refused")
    if not authority:
        raise UnsafeDestination("no_host", "no host")
    host, port = _split_port(authority)
    host = _check_host(host)
    if len(tail) > 0 and tail[0] == "/" and tail.startswith("//"):
        # "https://good.example//evil.example" is a path on good.example; harmless for a
        # redirect, but some servers bounce "//x" paths onward: refuse the ambiguity.
        raise UnsafeDestination("double_slash", "the path starts with '//'")
    tail = _encode_non_ascii(tail)
    out = f"{scheme}://{host}{':' + port if port else ''}{tail}"
    if len(out) > MAX_URL_CHARS:
        raise UnsafeDestination("too_long", f"longer than {MAX_URL_CHARS} characters encoded")
    return out


def _split_port(authority: str) -> tuple[str, str]:
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise UnsafeDestination("host_chars", "unclosed IPv6 bracket")
        host, after = authority[:close + 1], authority[close + 1:]
    else:
        host, colon, port = authority.partition(":")
        after = colon + port
    if not after:
        return host, ""
    if not after.startswith(":") or not _PORT.fullmatch(after[1:]) or not (
            0 < int(after[1:]) < 65536):
        raise UnsafeDestination("port", f"bad port {after[1:]!r}")
    return host, str(int(after[1:]))


def _check_host(host: str) -> str:
    if not host:
        raise UnsafeDestination("no_host", "no host")
    if host.startswith("["):
        import ipaddress

        if "%" in host:  # a zone id ("fe80::1%eth0") only means something on this machine
            raise UnsafeDestination("ip_literal", "IPv6 zone ids are refused")
        try:
            literal = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise UnsafeDestination("ip_literal", "not an IPv6 address") from None
        return f"[{literal.compressed}]"
    if any(d in host for d in _ALT_DOTS):
        raise UnsafeDestination("unicode_dot", "the host uses a non-ASCII dot")
    if "%" in host:
        raise UnsafeDestination("host_chars", "percent-encoding in the host")
    if not host.isascii():
        host = _punycode(host)
    host = host.lower()
    if len(host) > 253:
        raise UnsafeDestination("too_long", "host longer than 253 characters")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # Browsers read a host whose last label is a number as IPv4, in decimal, octal or
        # hex ("2130706433", "0x7f.1", "0177.0.0.1"): only the plain dotted quad is kept.
        if len(labels) == 4 and all(_OCTET.fullmatch(label) for label in labels):
            return host
        raise UnsafeDestination("ip_literal", f"{host!r} is not a plain dotted-quad address")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise UnsafeDestination("host_chars", f"invalid host label {label!r}")
        if label.startswith("xn--"):
            _check_punycode(label)
    return host


def _punycode(host: str) -> str:
    """Each non-ASCII label as IDNA (xn--), after NFKC like a browser; refuses what fails."""
    labels = []
    for label in host.split("."):
        if label.isascii():
            labels.append(label)
            continue
        _letters_only(unicodedata.normalize("NFKC", label))
        if "\u00df" in label or "\u03c2" in label:
            # IDNA 2003 (Python's codec) maps ß to ss and ς to σ, browsers (IDNA 2008) keep
            # them: "faß.de" and "fass.de" are different domains, so refuse the ambiguity
            raise UnsafeDestination("idn", f"label {label!r} has an IDNA deviation character")
        try:
            encoded = label.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnsafeDestination("idn", f"label {label!r} is not a valid IDN") from None
        if "." in encoded or not encoded:
            raise UnsafeDestination("unicode_dot", "a label maps to a dot")
        labels.append(encoded)
    return ".".join(labels)


def _letters_only(label: str) -> None:
    """Letters, marks and digits only: symbols such as U+2044 (fraction slash) or a
    full-width solidus make a host that *looks* like "evil.com/good.com"."""
    for ch in label:
        if not (ch.isascii() and (ch.isalnum() or ch in "-_")) and \
                unicodedata.category(ch)[0] not in "LMN":
            raise UnsafeDestination("host_chars", f"U+{ord(ch):04X} in the host")


def _check_punycode(label: str) -> None:
    """An "xn--" label must decode (as a browser would) to an acceptable IDN label."""
    try:
        decoded = label.encode("ascii").decode("idna")
    except UnicodeError:
        raise UnsafeDestination("idn", f"{label!r} is not valid punycode") from None
    _letters_only(decoded)


def _encode_non_ascii(text: str) -> str:
    if text.isascii():
        return text
    return "".join(ch if ch.isascii() else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
                   for ch in text)


# --- tokens ---------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(token: str) -> bytes:
    if not _B64URL.fullmatch(token) or len(token) % 4 == 1:
        raise TokenError("malformed", "not base64url")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenError("malformed", "not base64url") from None
    if _b64(raw) != token:  # unused trailing bits set: two spellings of one token
        raise TokenError("malformed", "non-canonical base64")
    return raw


def _field(value: str, name: str, limit: int = MAX_FIELD_BYTES) -> bytes:
    data = value.encode("utf-8")
    if len(data) > limit:
        raise ValueError(f"{name} is {len(data)} bytes; at most {limit} fit in a token")
    return data


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, _MAC_CONTEXT + body, hashlib.sha256).digest()


def sign(claims: LinkClaims, keys: LinkKeys) -> str:
    """The token for `claims` (base64url, no padding, at most MAX_TOKEN_CHARS).

    The url of a click or honeypot is checked (and normalised) here: UnsafeDestination.
    """
    if claims.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {claims.kind!r}")
    if claims.tracking not in TRACKING:
        raise ValueError(f"tracking must be 'person' or 'aggregate', not {claims.tracking!r}")
    url = check_destination(claims.url) if claims.kind in ("c", "h") else ""
    if claims.kind in ("o", "u") and claims.url:
        raise ValueError("open and unsubscribe tokens carry no url")
    recipient_hash = claims.recipient_hash if claims.tracking == "person" else ""
    if "@" in recipient_hash:
        raise ValueError("recipient_hash looks like an address: tokens carry the hash only")
    if not -1 <= claims.link < 2**31:
        raise ValueError(f"link index {claims.link} out of range")
    if not 0 <= claims.issued < 2**63 or not 0 <= claims.expires < 2**63:
        raise ValueError("issued and expires must be non-negative epoch seconds")
    key = keys.key(keys.signing_kid)
    assert key is not None
    kid = key.kid.encode("ascii")
    parts = [bytes([VERSION, len(kid)]), kid,
             _FIXED.pack(claims.kind.encode(), TRACKING[claims.tracking], claims.link + 1,
                         int(claims.issued), int(claims.expires))]
    values = claims._replace(recipient_hash=recipient_hash)
    for name in _STRING_FIELDS:
        if not getattr(values, name).isprintable():  # no newlines, controls, bidi tricks
            raise ValueError(f"{name} has control or invisible characters")
        data = _field(getattr(values, name), name)
        parts += [bytes([len(data)]), data]
    url_bytes = url.encode("ascii")
    parts += [struct.pack(">H", len(url_bytes)), url_bytes]
    body = b"".join(parts)
    token = _b64(body + _mac(key.secret, body))
    if len(token) > MAX_TOKEN_CHARS:
        raise UnsafeDestination("too_long", f"the token would be {len(token)} characters; "
                                f"at most {MAX_TOKEN_CHARS}")
    return token


def _parse(raw: bytes) -> tuple[str, bytes, LinkClaims]:
    """Split a decoded token into (kid, body, claims); TokenError("malformed") on any doubt."""
    try:
        if raw[0] != VERSION:
            raise TokenError("malformed", f"unknown version {raw[0]}")
        body, pos = raw[:-_MAC_LEN], 2 + raw[1]
        kid = body[2:pos].decode("ascii")
        if not _KID.fullmatch(kid):
            raise TokenError("malformed", "bad key id")
        kind_b, tracking_b, link, issued, expires = _FIXED.unpack_from(body, pos)
        pos += _FIXED.size
        strings = []
        for _ in _STRING_FIELDS:
            size = body[pos]
            strings.append(body[pos + 1:pos + 1 + size].decode("utf-8"))
            if len(strings[-1].encode("utf-8")) != size:
                raise TokenError("malformed", "truncated field")
            pos += 1 + size
        (size,) = struct.unpack_from(">H", body, pos)
        url = body[pos + 2:pos + 2 + size].decode("ascii")
        pos += 2 + size
    except (IndexError, struct.error, UnicodeDecodeError):
        raise TokenError("malformed", "truncated or garbled") from None
    if pos != len(body) or size != len(url):
        raise TokenError("malformed", "trailing or missing bytes")
    kind = kind_b.decode("latin-1")
    tracking = _TRACKING_BACK.get(tracking_b)
    if kind not in KINDS or tracking is None:
        raise TokenError("malformed", "unknown kind or tracking")
    claims = LinkClaims(kind, *strings[:7], link - 1, url, issued, expires, tracking)
    return kid, body, claims


def verify(token: str, keys: LinkKeys, now: float) -> LinkClaims:
    """The claims of a token signed with a current (or grace) key, or TokenError.

    Checks, in order: length, encoding and structure ("too_long", "malformed"), key id
    ("unknown_key"), signature in constant time ("bad_signature"), retirement
    ("retired_key"), expiry ("expired"), and the destination again ("unsafe_destination").
    """
    if not isinstance(token, str):
        raise TokenError("malformed", "not text")
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("too_long", f"longer than {MAX_TOKEN_CHARS} characters")
    raw = _unb64(token)
    if len(raw) < _MIN_RAW:
        raise TokenError("malformed", "too short")
    kid, body, claims = _parse(raw)
    key = keys.key(kid)
    if key is None:
        raise TokenError("unknown_key", f"no key {kid!r}")
    if not hmac.compare_digest(_mac(key.secret, body), raw[len(body):]):
        raise TokenError("bad_signature", "the signature does not match")
    if key.retired_at is not None and now >= key.retired_at + keys.grace_s:
        raise TokenError("retired_key", f"key {kid!r} is past its grace period")
    if claims.expires and now >= claims.expires:
        raise TokenError("expired", "the link has expired")
    if claims.kind in ("c", "h"):
        try:
            if check_destination(claims.url) != claims.url:
                raise UnsafeDestination("changed", "not in normal form")
        except UnsafeDestination as exc:
            raise TokenError("unsafe_destination", exc.reason) from None
    elif claims.url:
        raise TokenError("malformed", "an open or unsubscribe token with a url")
    if claims.tracking == "aggregate" and claims.recipient_hash:
        raise TokenError("malformed", "an aggregate token with a recipient hash")
    return claims


def check_base_url(base_url: str) -> str:
    """The tracking edge's public base URL without a trailing "/", or UnsafeDestination.

    >>> check_base_url("https://t.news.example/")
    'https://t.news.example'
    """
    checked = check_destination(base_url)
    if "?" in checked or "#" in checked:
        raise UnsafeDestination("base_url", "a base URL has no query string or fragment")
    return checked.rstrip("/")


def track_url(base_url: str, claims: LinkClaims, keys: LinkKeys) -> str:
    """`base_url` + "/c/<token>" (clicks and the honeypot), "/o/<token>" or "/u/<token>"."""
    return f"{base_url.rstrip('/')}/{PATHS[claims.kind]}/{sign(claims, keys)}"
