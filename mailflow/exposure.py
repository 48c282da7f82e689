"""Fail closed: a server bound beyond loopback starts only with every secret it needs.

`mailflow ingest`, `mailflow serve` and the job's admin endpoint each check, before
they open a socket, whether their bind address is loopback. If it is not, every
provider endpoint must be able to authenticate its caller and the API must have
tokens; otherwise the verb exits with code 2 and names every missing variable at
once. `--insecure` starts anyway and logs a warning at start and every hour.

>>> from flows.settings import Settings
>>> missing("api", Settings())
['MAILFLOW_API_TOKENS']
>>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("")
(True, True, False, False)
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading

from flows.settings import ConfigError, Settings

log = logging.getLogger(__name__)

REMIND_EVERY_S = 3600.0

HOST_VARIABLE = {"api": "MAILFLOW_API_HOST", "ingest": "MAILFLOW_INGEST_HOST",
                 "admin": "MAILFLOW_ADMIN_HOST"}


def is_loopback(host: str) -> bool:
    """Only loopback addresses (and names that resolve to nothing else) count; an empty
    host or a wildcard (0.0.0.0, ::) listens everywhere. A name that does not resolve
    is not loopback: fail closed."""
    host = host.strip().strip("[]")
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback
                               for info in infos)


def missing(server: str, settings: Settings) -> list[str]:
    """What `server` lacks to authenticate every caller (names of variables to set)."""
    if server == "api":
        return [] if _tokens(settings.api_tokens) else ["MAILFLOW_API_TOKENS"]
    if server == "ingest":
        gaps = [variable for variable, value in (
            ("MAILFLOW_INGEST_TOKEN", settings.ingest_token),  # /v1/webhooks/canonical
            ("MAILFLOW_SENDGRID_PUBLIC_KEY", settings.sendgrid_public_key),
            ("MAILFLOW_MAILGUN_SIGNING_KEY", settings.mailgun_signing_key),
            ("MAILFLOW_POSTMARK_BASIC_AUTH", settings.postmark_basic_auth),
            ("MAILFLOW_SPARKPOST_BASIC_AUTH", settings.sparkpost_basic_auth),
        ) if not value.strip()]
        # SES: a verified SNS signature proves Amazon sent it, the topic ARN that it
        # is *your* topic (anyone can sign messages of their own topic)
        if not settings.ses_verify_sns:
            gaps.append("MAILFLOW_SES_VERIFY_SNS=1")
        if not _tokens(settings.ses_topic_arns):
            gaps.append("MAILFLOW_SES_TOPIC_ARNS")
        return gaps
    if server == "admin":
        # no authentication at all (POST /sql runs any query): loopback only
        return ["(the admin endpoint has no authentication; keep it on loopback)"]
    raise KeyError(server)


def _tokens(value: str | list[str]) -> list[str]:
    """The non-blank entries of a comma-separated setting (text, or a list of it)."""
    items = value if isinstance(value, list) else value.split(",")
    return [t.strip() for t in items if t.strip()]


def check_exposure(server: str, host: str, settings: Settings, insecure: bool,
                   remind_every_s: float = REMIND_EVERY_S) -> Reminder | None:
    """Raise ConfigError (exit code 2) if `server` would listen beyond loopback without
    the secrets it needs; with `insecure`, warn now and every `remind_every_s` instead
    (the returned Reminder; stop it when the server stops)."""
    gaps = missing(server, settings)
    if not gaps:
        return None
    if is_loopback(host):
        if server != "admin":  # said once, so an unauthenticated default is never silent
            log.info("%s on loopback only; callers are not authenticated without: %s",
                     server, ", ".join(gaps))
        return None
    where = f"{HOST_VARIABLE[server]}={host or '(all interfaces)'}"
    if not insecure:
        raise ConfigError(
            f"refusing to listen on {where} (not loopback) while callers cannot be "
            f"authenticated; set: {', '.join(gaps)} (or bind to 127.0.0.1, or pass "
            "--insecure to start anyway)")
    message = (f"INSECURE: listening on {where} without authentication for every caller; "
               f"missing: {', '.join(gaps)}")
    return Reminder(message, remind_every_s).start()


class Reminder:
    """Logs a warning now and then every `every_s` seconds, until stopped."""

    def __init__(self, message: str, every_s: float):
        self.message = message
        self.every_s = every_s
        self.warnings = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="insecure-reminder",
                                        daemon=True)

    def start(self) -> Reminder:
        self._warn()
        self._thread.start()
        return self

    def _warn(self) -> None:
        self.warnings += 1
        log.warning("%s", self.message)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._warn()

    def stop(self) -> None:
        self._stop.set()
