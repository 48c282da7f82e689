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
from hashlib import blake2b

#: Key used by `--dev` runs only; `mailflow run` refuses to start without a real one.
DEV_HASH_KEY = b"mailflow-dev-only-key-do-not-use-in-production"

_ADDRESS_LIKE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")


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
        return blake2b(address.strip().lower().encode(), key=self._key, digest_size=16).hexdigest()

    def payload(self, raw: bytes) -> str:
        """Stable id for a message without an `event_id`: a keyed hash of its bytes."""
        return blake2b(raw, key=self._payload_key, digest_size=16).hexdigest()

    def scrub(self, text: str) -> str:
        """Replace every address-like substring of free text by `hash:…`.

        Bounce diagnostics, URLs and unknown fields often quote the address
        ("550 5.1.1 <ann@example.com>: user unknown").

        >>> RecipientHasher(b"k").scrub("550 5.1.1 <ann@example.com> unknown")[:16]
        '550 5.1.1 <hash:'
        """
        if "@" not in text:
            return text
        return _ADDRESS_LIKE.sub(lambda m: f"hash:{self.recipient(m.group())[:12]}", text)
