"""Who is in a control group: a deterministic, keyed assignment of recipients.

For sending systems that let mailflow decide. A recipient is first drawn for the
global control group (no marketing at all), one draw per recipient whatever the
flow; everyone else is drawn for each flow's holdout, an independent draw per
(flow, recipient). Transactional flows are exempt from both: they are always sent.

Each draw is HMAC-SHA-256 under the deployment's secret hash key
(`MAILFLOW_HASH_KEY`) over the salt, the version, what is drawn (global, or which
flow) and the canonical recipient hash, read as a uniform number in [0, 1): below
the share is control. Keyed, so nobody without the key can tell who is in the control
group from an address; from the recipient hash, so an address and its hash always
agree; deterministic, so every process, restart and replay gives the same answer.
A new salt or version starts new control groups (a fresh, independent split).

>>> a = Assigner(b"secret", "control-1", 1, global_share=0.05, flow_share=0.1,
...              flow_shares={"onboarding": 0.2}, transactional=frozenset({"receipts"}))
>>> x = a.assign("ann@example.com", "onboarding")
>>> x.group in ("treated", "global", "flow"), x.holdout == (x.group != "treated"), x.version
(True, True, 'v1:control-1')
>>> x == a.assign(a.recipient_hash("Ann@Example.com "), "onboarding")
True
>>> a.assign("ann@example.com", "receipts").group
'treated'
>>> a.expected_control_share(""), a.expected_control_share("onboarding")
(0.05, 0.2)
>>> a.expected_control_share("welcome"), a.expected_control_share("receipts")
(0.1, 0.0)
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from hashlib import sha256
from typing import Any, NamedTuple

from schemas.hashing import RecipientHasher

#: The groups a recipient can be in: sent ("treated"), or held out by the global control
#: group or by the flow's own holdout.
TREATED, GLOBAL, FLOW = "treated", "global", "flow"

_SCALE = float(1 << 53)  # 53 bits: every double in [0, 1) a draw can give is equally likely


class Assignment(NamedTuple):
    recipient_hash: str
    flow_id: str  # "" for the global decision alone
    group: str  # "treated" | "global" | "flow"
    holdout: bool  # not sent: group is "global" or "flow"
    version: str  # "v<version>:<salt>": which split this answer belongs to


def check_share(value: Any, name: str) -> float:
    """A control share as a float, or ValueError naming the setting.

    >>> check_share(0.05, "global_control_share"), check_share(0, "x")
    (0.05, 0.0)
    >>> check_share(1, "holdout_share")
    Traceback (most recent call last):
    ...
    ValueError: holdout_share must be a share from 0 up to (not including) 1, e.g. 0.05; got 1
    """
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 <= value < 1):
        raise ValueError(f"{name} must be a share from 0 up to (not including) 1, e.g. 0.05; "
                         f"got {value!r}")
    return float(value)


def check_salt(salt: Any, name: str = "salt") -> str:
    """The salt as given, if it is 1-128 printable characters without spaces or ':'."""
    if (not isinstance(salt, str) or not 1 <= len(salt) <= 128 or not salt.isprintable()
            or ":" in salt or any(c.isspace() for c in salt)):
        raise ValueError(f"{name} must be 1-128 printable characters, no spaces or ':' "
                         f"(e.g. control-2); got {salt!r}")
    return salt


def check_version(version: Any, name: str = "version") -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{name} must be a whole number >= 1; got {version!r}")
    return version


class Assigner:
    """Assigns recipients to the treated group, the global control group or a flow's
    holdout (see the module docstring). Immutable; safe to share between threads."""

    __slots__ = ("_key", "hasher", "salt", "version", "version_id", "global_share",
                 "flow_share", "flow_shares", "transactional")

    def __init__(self, key: bytes, salt: str, version: int, global_share: float,
                 flow_share: float, flow_shares: Mapping[str, float] | None = None,
                 transactional: frozenset[str] = frozenset()):
        if not key:
            raise ValueError("the assignment is keyed by the recipient hash key "
                             "(MAILFLOW_HASH_KEY); it must not be empty")
        self._key = bytes(key)
        self.hasher = RecipientHasher(self._key)
        self.salt = check_salt(salt)
        self.version = check_version(version)
        self.version_id = f"v{self.version}:{self.salt}"
        self.global_share = check_share(global_share, "global_share")
        self.flow_share = check_share(flow_share, "flow_share")
        self.flow_shares = {str(flow): check_share(share, f"flow_shares[{flow!r}]")
                            for flow, share in (flow_shares or {}).items()}
        self.transactional = frozenset(transactional)

    @classmethod
    def from_settings(cls, settings: Any, key: bytes | None = None) -> Assigner:
        """The deployment's assigner: `holdout_share`, `global_control_share`,
        `holdout_salt`, `holdout_version`, `[holdouts]`, `transactional_flows`, keyed by
        `key` (default: `settings.hash_key`; pass the development key for `--dev`)."""
        if key is None:
            key = settings.hash_key.encode() if settings.hash_key else b""
        return cls(key, settings.holdout_salt, settings.holdout_version,
                   settings.global_control_share, settings.holdout_share,
                   dict(settings.holdouts), frozenset(settings.transactional_flows))

    def recipient_hash(self, recipient: str) -> str:
        """The canonical recipient hash of an address (the job's hash under the same key),
        or a hash as it is (trimmed, lower-cased)."""
        if "@" in recipient:
            return self.hasher.recipient(recipient)
        return recipient.strip().lower()

    def draw(self, recipient_hash: str, flow_id: str | None) -> float:
        """The recipient's uniform number in [0, 1) for the global draw (`flow_id` None)
        or a flow's. Every field is length-prefixed: no two inputs share a message."""
        what = "global" if flow_id is None else f"flow:{flow_id}"
        message = "".join(f"{len(part)}:{part}" for part in (
            "mailflow-assignment", str(self.version), self.salt, what, recipient_hash))
        digest = hmac.new(self._key, message.encode("utf-8", "surrogatepass"), sha256).digest()
        return (int.from_bytes(digest[:8], "big") >> 11) / _SCALE

    def assign(self, recipient_hash: str, flow_id: str = "") -> Assignment:
        """The recipient's group for a flow ("" = only the global decision). An address
        is hashed first, so it gets the same answer as its hash.

        >>> a = Assigner(b"k", "s", 1, global_share=0.0, flow_share=0.0)
        >>> a.assign("0" * 32, "welcome")
        Assignment(recipient_hash='00000000000000000000000000000000', flow_id='welcome', \
group='treated', holdout=False, version='v1:s')
        """
        h = self.recipient_hash(recipient_hash)
        if not h:
            raise ValueError("a recipient (address or recipient hash) is required")
        if flow_id in self.transactional:
            group = TREATED  # exempt from every control group: always sent
        elif self.global_share and self.draw(h, None) < self.global_share:
            group = GLOBAL
        elif flow_id and self.draw(h, flow_id) < self.flow_share_of(flow_id):
            group = FLOW
        else:
            group = TREATED
        return Assignment(h, flow_id, group, group != TREATED, self.version_id)

    def flow_share_of(self, flow_id: str) -> float:
        """The flow's holdout share: its override, else the default; 0 for transactional
        flows and for "" (no flow)."""
        if not flow_id or flow_id in self.transactional:
            return 0.0
        return self.flow_shares.get(flow_id, self.flow_share)

    def expected_control_share(self, flow_id: str) -> float:
        """The control share the lift report's sample-ratio test expects: for "" the
        global share; for a flow its holdout share among those it compares (the global
        control group is in no flow's comparison); 0 for a transactional flow."""
        if not flow_id:
            return self.global_share
        return self.flow_share_of(flow_id)

    def __repr__(self) -> str:  # never the key
        return (f"Assigner(version={self.version_id!r}, global_share={self.global_share}, "
                f"flow_share={self.flow_share}, flow_shares={self.flow_shares!r}, "
                f"transactional={sorted(self.transactional)!r})")
