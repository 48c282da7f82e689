"""Keyed hashing of recipients: raw addresses never leave the edge.

BLAKE2b in keyed mode is a MAC, so without the secret nobody can confirm a
guessed address against a stored hash (a plain SHA-256 of an address can be
reversed with a list of addresses). The same key gives the same hash in every
process, so joins across tables and topics work.

>>> h = RecipientHasher(b"secret")
>>> h.recipient("Ann@Example.com") == h.recipient("ann@example.com ")
True
>>> len(h.recipient("ann@example.com"))
32
>>> h.recipient("ann@example.com") == RecipientHasher(b"other").recipient("ann@example.com")
False
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from hashlib import blake2b
from ipaddress import IPv6Address, ip_address
from urllib.parse import unquote

#: A scrubbing function: free text in, the same text with addresses replaced out.
Scrub = Callable[[str], str]

#: Key used by `--dev` runs only; `mailflow run` refuses to start without a real one.
DEV_HASH_KEY = b"mailflow-dev-only-key-do-not-use-in-production"

# An address in free text is found from its "@", however it is written: plain, URL-encoded
# (%40), as an HTML entity, or full-width. From there the local part is read backwards and
# the domain forwards, each with an anchored match over a bounded slice: no regex ever
# scans the whole text from every start position (that is quadratic on hostile input).
_AT = re.compile(r"@|%40|&#0*64;|&#[xX]0*40;|&commat;|\uff20")
# Non-ASCII letters and digits (jörg, 山田) are word characters (\w); marks (combining
# accents, Indic vowel signs) are not, so any other non-ASCII character that is not a space
# counts too (symbols at either end are trimmed later). The two classes must not overlap:
# overlapping alternatives inside "+" backtrack exponentially ("a@üüü…ü!").
_WIDE = r"[^\w\x00-\x7f\s\uff20\u3002\uff0e\uff61]"
#: The local part, reversed ("%C3" reads "3C%"): URL-encoded UTF-8 bytes and + - . _ only,
#: so that "e%3Dann%40…" keeps its "e%3D" (not part of the address).
_LOCAL_REVERSED = re.compile(r"(?:[0-9A-Fa-f][89A-Fa-f]%|[BbDdEe]2%|[Ff]5%|[\w.+\-]|"
                             r"[\u3002\uff0e\uff61]|" + _WIDE + r")+")
_LABEL = r"(?:%[89A-Fa-f][0-9A-Fa-f]|[\w\-]|" + _WIDE + r")+"
_DOT = r"(?:\.|%2[Ee]|[\u3002\uff0e\uff61])"
#: A domain with at least one dot and a top-level label that starts with a letter
#: (IDN labels and xn-- punycode included): "v1@2.0" is no address.
_DOMAIN = re.compile(_LABEL + _DOT + r"(?:" + _LABEL + _DOT + r")*"
                     r"(?:[^\W\d_]|%[89A-Fa-f][0-9A-Fa-f]|" + _WIDE + r")" + _LABEL)
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_MAX_LOCAL = 3 * 64  # characters, URL-encoded at worst
_MAX_DOMAIN = 3 * 255
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")
_WIDE_DOTS = "\u3002\uff0e\uff61"
_IDN_DOTS = str.maketrans("\u3002\uff0e\uff61", "...")


class RecipientHasher:
    """Pseudonymises recipients (and anything address-like in free text)."""

    __slots__ = ("_key", "_payload_key")

    def __init__(self, key: bytes):
        if not key:
            raise ValueError("the recipient hash key must not be empty")
        # BLAKE2b keys are at most 64 bytes; longer secrets are folded first.
        self._key = key if len(key) <= 64 else blake2b(key).digest()
        self._payload_key = blake2b(self._key, person=b"mailflow-payload").digest()

    def recipient(self, address: str) -> str:
        """Hex hash (32 chars) of a normalised address: trimmed, lower-cased."""
        return blake2b(address.strip().lower().encode("utf-8", "surrogatepass"), key=self._key,
                       digest_size=16).hexdigest()

    def payload(self, raw: bytes) -> str:
        """Stable id for a message without an `event_id`: a keyed hash of its bytes."""
        return blake2b(raw, key=self._payload_key, digest_size=16).hexdigest()

    def scrub(self, text: str) -> str:
        """Replace every address-like substring of free text by `hash:…`.

        Bounce diagnostics, URLs and unknown fields often quote the address
        ("550 5.1.1 <ann@example.com>: user unknown"), also URL-encoded or in
        other scripts. The hash is the first 12 hex digits of the address's
        recipient hash, so a scrubbed text still names the same recipient.

        >>> h = RecipientHasher(b"k")
        >>> h.scrub("550 5.1.1 <ann@example.com> unknown")[:16]
        '550 5.1.1 <hash:'
        >>> h.scrub("https://x.example/u?e=ann%40example.com") == (
        ...     "https://x.example/u?e=hash:" + h.recipient("ann@example.com")[:12])
        True
        >>> h.scrub("<jörg@bücher.example>") == f"<hash:{h.recipient('jörg@bücher.example')[:12]}>"
        True
        >>> h.scrub("no address here, v1@2.0 neither")
        'no address here, v1@2.0 neither'
        """
        # The hot path: almost every field holds no "@" in any spelling.
        if "@" not in text and "%40" not in text and "&" not in text and "\uff20" not in text:
            return text
        return self._replace(text, None)

    def scrub_own(self, text: str, recipient_hash: str, recipient_domain: str,
                  address: str | None = None) -> str:
        """Replace only the recipient's own address in `text` (`address` when the event
        carried it, else found by its hash).

        For identifiers that are address-shaped by design, such as a Message-ID
        ("<20251121.1@mg.acme.example>"): they stay as the sending system knows
        them, unless they quote the recipient. The same input always gives the
        same output, so events of one message still join.

        >>> h = RecipientHasher(b"k")
        >>> own = h.recipient("ann@example.com"), "example.com"
        >>> h.scrub_own("<20251121.1@mg.acme.example>", *own)
        '<20251121.1@mg.acme.example>'
        >>> h.scrub_own("m-ann@example.com.x7", *own)
        'm-hash:206347a99c68.x7'
        >>> h.scrub_own("<0ann%40example.com>", *own, "ann@example.com")
        '<hash:206347a99c68>'
        """
        if "@" not in text and "%40" not in text and "&" not in text and "\uff20" not in text:
            return text
        # The recipient's address spelt plainly contains its domain: most ids do not.
        if (text.isascii() and "%" not in text and "&" not in text
                and recipient_domain not in text.lower()):
            return text
        own = (recipient_hash, recipient_domain, address.strip().lower() if address else None)
        return self._replace(text, own)

    def _replace(self, text: str, own: tuple[str, str, str | None] | None) -> str:
        out: list[str] = []
        done = 0  # text[:done] is copied or replaced already
        for at in _AT.finditer(text):
            start, end = at.span()
            if start < done:
                continue
            domain = _DOMAIN.match(text, end, min(len(text), end + _MAX_DOMAIN))
            if domain is None:
                continue
            low = max(done, start - _MAX_LOCAL)
            local = _LOCAL_REVERSED.match(text[low:start][::-1])
            if local is None:
                continue
            begin = start - local.end()
            if begin and text[begin - 1] == "%" and _HEX2.match(text, begin):
                begin += 2  # "e%3Dann%40…": the encoded "=" is not part of the address
            stop = domain.end()
            if not text.isascii():  # «jörg@bücher.example»: the quotes are not part of it
                begin, stop = _without_symbols(text, begin, start, end, stop)
            if begin >= start or "." not in text[end:stop].translate(_IDN_DOTS):
                continue
            if own is None:
                digest = self.recipient(_address(text[begin:start], text[end:stop]))
            else:
                found = self._find_own(text, begin, start, end, stop, own)
                if found is None:
                    continue
                begin, stop = found
                digest = own[0]
            out.append(text[done:begin])
            out.append(f"hash:{digest[:12]}")
            done = stop
        if not out:
            return text
        out.append(text[done:])
        return "".join(out)

    def _find_own(self, text: str, begin: int, at: int, after: int, stop: int,
                  own: tuple[str, str, str | None]) -> tuple[int, int] | None:
        """The span of the recipient's own address around the "@" at `at`, if it is there.

        An identifier may glue text to either side ("m-ann@example.com.x7"). Knowing
        the address, the whole address-like token goes if it contains it; knowing only
        the hash, the domain is tried up to each dot and the local part from each
        separator on (a domain other than the recipient's costs no hash).
        """
        recipient_hash, recipient_domain, address = own
        if address is not None:
            return (begin, stop) if address in _address(text[begin:at],
                                                         text[after:stop]).lower() else None
        rights = [stop] + [i for i in range(stop - 1, after, -1) if text[i] == "."][:8]
        lefts = [begin] + [i + 1 for i in range(begin, at) if text[i] in "-._+="][:8]
        for right in rights:
            if _address("", text[after:right]).lower() != "@" + recipient_domain:
                continue
            for left in lefts:
                if self.recipient(_address(text[left:at], text[after:right])) == recipient_hash:
                    return left, right
        return None


def _address(local: str, domain: str) -> str:
    """The address as its owner would write it: URL-decoded, IDN dots as dots."""
    address = f"{local}@{domain}"
    if "%" in address:
        address = unquote(address, errors="replace")
    if not address.isascii():
        address = address.translate(_IDN_DOTS)
    return address


def _without_symbols(text: str, begin: int, at: int, after: int, stop: int
                     ) -> tuple[int, int]:
    """Narrow an address to the letters, digits and marks next to its "@": non-ASCII
    punctuation and symbols (quotes, 、, »)  end it on either side."""
    for i in range(at - 1, begin - 1, -1):
        if _is_symbol(text[i]):
            begin = i + 1
            break
    for i in range(after, stop):
        if _is_symbol(text[i]):
            stop = i
            break
    while stop > after and text[stop - 1] in ".-":
        stop -= 1
    return begin, stop


def _is_symbol(char: str) -> bool:
    return not char.isascii() and char not in _WIDE_DOTS and unicodedata.category(char)[0] in "PSZC"


def truncate_ip(ip: str) -> str:
    """The network of an IP address as kept at rest: IPv4 /24, IPv6 /48; "" if not an IP.

    A reader's full IP identifies a household; its network still tells an
    Apple or Google image proxy from a reader, and a country from another.

    >>> truncate_ip("203.0.113.77"), truncate_ip("2001:db8:abcd:12::7"), truncate_ip("")
    ('203.0.113.0', '2001:db8:abcd::', '')
    >>> truncate_ip("::ffff:17.58.1.2"), truncate_ip("not an ip; ann@example.com")
    ('::ffff:17.58.1.0', '')
    """
    if not ip:
        return ""
    if _IPV4.fullmatch(ip):
        return ip[:ip.rindex(".")] + ".0"
    return _truncate_other(ip)


@lru_cache(maxsize=4096)
def _truncate_other(ip: str) -> str:
    try:
        address = ip_address(ip.strip())
    except ValueError:
        return ""  # not an address: nothing of it is worth keeping, and it may be anything
    if address.version == 4:
        return truncate_ip(str(address))
    assert isinstance(address, IPv6Address)
    mapped = address.ipv4_mapped
    if mapped is not None:
        return "::ffff:" + truncate_ip(str(mapped))
    return str(IPv6Address(int(address) >> 80 << 80))
