"""`mailflow links sign` / `mailflow links rewrite`: signing tracking links where mail is built.

An MTA or a sending script calls these per message (or imports `schemas.links` and
`schemas.rewrite` directly): the recipient address is hashed here with the job's key, so
only the hash ever reaches a token, the tracking edge and the events.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO

from flows.settings import ConfigError, Settings
from schemas.links import LinkClaims, LinkKeys, UnsafeDestination, check_base_url, track_url
from schemas.rewrite import rewrite_html

SIGN_HELP = """\
Sign one link and print its tracking URL (MAILFLOW_TRACK_BASE_URL + /c/<token>, or /o/ and
/u/ for --kind o and u). The destination is checked first: http/https only, a real host,
no credentials, no protocol-relative, backslash or control-character tricks; IDN hosts
become punycode; the query string and fragment are kept exactly. An unsafe destination is
refused with exit code 2 and the reason on stderr.

The recipient address is hashed with the job's key (MAILFLOW_HASH_KEY, or --dev for the
public development key); tokens carry the hash, never the address. Links are signed with
the first key of MAILFLOW_TRACK_KEYS ("kid:secret,..."; required).

example:
  mailflow links sign --url 'https://shop.example/sale?utm_source=mail#top' \\
      --message-id m-123 --recipient ann@example.org --sender news.shop.example \\
      --campaign spring --flow welcome --variant B
"""

REWRITE_HELP = """\
Read an HTML mail body on stdin and print it on stdout with every web link (<a href>,
<area href>, Outlook VML buttons) replaced by a signed click link, a 1x1 open pixel added
before </body> and one hidden honeypot link (invisible to people; a link-sweeping scanner
follows it and gives itself away). The rest of the markup is kept byte for byte.

Left alone: mailto:, tel:, sms:, #anchors, links marked data-mailflow="off", links already
on the tracking base URL. Links with an unsafe or relative destination (javascript:,
credentials, merge tags like *|UNSUB|*) are left exactly as written and listed on stderr.

The List-Unsubscribe and List-Unsubscribe-Post (RFC 8058 one-click) headers go to stderr,
one per line, or as JSON to --headers-json FILE together with the tracked and skipped
links. Add them to the message's header.

Links are signed with the first key of MAILFLOW_TRACK_KEYS (required) and point at
MAILFLOW_TRACK_BASE_URL; the recipient is hashed with MAILFLOW_HASH_KEY (or --dev).

example (in an MTA's pipeline):
  mailflow links rewrite --message-id "$MID" --recipient "$RCPT" --sender news.shop.example \\
      --campaign spring --headers-json /tmp/headers.json < body.html > body.tracked.html
"""


def _template(settings: Settings, args: object, dev: bool, now: float) -> LinkClaims:
    from mailflow.job import hasher_for

    recipient = (getattr(args, "recipient", "") or "").strip()
    local, at, domain = recipient.rpartition("@")
    if not at or not local or not domain:
        raise ConfigError(f"--recipient must be an email address, not {recipient!r}")
    # the same rule as the edge: `track_aggregate`, then `[tracking]` (sender or sender/campaign)
    aggregate = bool(getattr(args, "aggregate", False)) or settings.tracking_mode(
        args.sender, getattr(args, "campaign", "") or "") == "aggregate"  # type: ignore[attr-defined]
    recipient_hash = "" if aggregate else hasher_for(settings, dev).recipient(recipient)
    ttl = getattr(args, "ttl", None)
    ttl = settings.track_link_ttl_s if ttl is None else ttl
    if ttl < 0:
        raise ConfigError("--ttl must not be negative")
    return LinkClaims(
        kind="c", message_id=args.message_id, sender=args.sender,  # type: ignore[attr-defined]
        recipient_hash=recipient_hash, recipient_domain=domain.lower(),
        campaign_id=getattr(args, "campaign", "") or "", flow_id=getattr(args, "flow", "") or "",
        variant=getattr(args, "variant", "") or "", link=-1, url="", issued=int(now),
        expires=int(now) + ttl if ttl else 0, tracking="aggregate" if aggregate else "person")


def _keys(settings: Settings) -> LinkKeys:
    keys: LinkKeys = settings.link_keys()  # ConfigError when missing: fail closed
    try:
        check_base_url(settings.track_base_url)
    except UnsafeDestination as exc:
        raise ConfigError(f"MAILFLOW_TRACK_BASE_URL {settings.track_base_url!r} is not a "
                          f"usable http(s) base URL ({exc.reason})") from None
    return keys


def sign_command(settings: Settings, args: object, dev: bool = False,
                 out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Print the tracking URL of one link; 2 (reason on stderr) for an unsafe destination."""
    out, err = out or sys.stdout, err or sys.stderr
    keys = _keys(settings)
    now = time.time()
    template = _template(settings, args, dev, now)
    kind = getattr(args, "kind", "c") or "c"
    url = getattr(args, "url", None) or ""
    if kind in ("c", "h") and not url:
        raise ConfigError(f"--url is required for --kind {kind}")
    if kind in ("o", "u") and url:
        raise ConfigError(f"--kind {kind} links carry no --url")
    link = getattr(args, "link", None)
    claims = template._replace(kind=kind, url=url,
                               link=(0 if link is None else link) if kind in ("c", "h") else -1)
    try:
        tracked = track_url(settings.track_base_url, claims, keys)
    except UnsafeDestination as exc:
        print(f"mailflow links sign: unsafe destination: {exc}", file=err)
        return 2
    except ValueError as exc:
        print(f"mailflow links sign: cannot sign: {exc}", file=err)
        return 2
    print(tracked, file=out)
    return 0


def rewrite_command(settings: Settings, args: object, dev: bool = False,
                    source: IO[bytes] | None = None, out: IO[bytes] | None = None,
                    err: IO[str] | None = None) -> int:
    """Rewrite stdin's HTML to stdout; headers (and skipped links) to stderr or a JSON file."""
    source = source or sys.stdin.buffer
    out, err = out or sys.stdout.buffer, err or sys.stderr
    keys = _keys(settings)
    now = time.time()
    template = _template(settings, args, dev, now)
    # surrogateescape: bytes that are not UTF-8 (a legacy charset) pass through unchanged.
    text = source.read().decode("utf-8", "surrogateescape")
    try:
        result = rewrite_html(text, settings.track_base_url, template, keys, now,
                              honeypot_url=getattr(args, "honeypot_url", None),
                              unsubscribe_mailto=getattr(args, "unsubscribe_mailto", None))
    except ValueError as exc:
        print(f"mailflow links rewrite: {exc}", file=err)
        return 2
    out.write(result.html.encode("utf-8", "surrogateescape"))
    out.flush()
    for href, reason in result.skipped:
        print(f"mailflow links rewrite: left untracked ({reason}): {href!r}", file=err)
    headers_json = getattr(args, "headers_json", None)
    if headers_json:
        report = {"headers": result.headers,
                  "links": [{"index": i, "url": u} for i, u in result.links],
                  "skipped": [{"href": h, "reason": r} for h, r in result.skipped]}
        with open(headers_json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
    else:
        for name, value in result.headers.items():
            print(f"{name}: {value}", file=err)
    return 0
