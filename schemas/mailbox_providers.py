"""Mailbox-provider keys: which mailbox provider a recipient domain belongs to.

Throttle decisions, metrics and models are kept per *provider*, not per raw
domain: a complaint spike at hotmail.de says something about Microsoft's
consumer mail as a whole, so it must land on the same key as outlook.com.
The key is the provider's canonical domain; a domain we do not know is its
own key (lower-cased), so a company's own mail servers are a provider too.

Both functions run once per event, so they do no regex and no allocation
beyond the normalised string: one dict lookup from a flat alias table built
at import time.

>>> provider_key("googlemail.com")
'gmail.com'
>>> provider_key("Hotmail.DE.")
'outlook.com'
>>> provider_key("aol.com")  # Yahoo Inc. runs AOL Mail
'yahoo.com'
>>> provider_key("mail.acme.example")
'mail.acme.example'
>>> split_address("Jane.Doe@GoogleMail.com")
('Jane.Doe', 'googlemail.com')
>>> split_address("jane@localhost") is None
True
"""

from __future__ import annotations

__all__ = ["PROVIDERS", "provider_key", "split_address"]

#: Canonical provider key -> every recipient domain that provider serves
#: (the key itself first). One key per mailbox operator whose filtering and
#: reputation senders meet as one system. Treat as read-only: the lookup
#: table below is built from it once, at import.
PROVIDERS: dict[str, tuple[str, ...]] = {
    # --- global ------------------------------------------------------------
    "gmail.com": ("gmail.com", "googlemail.com"),
    # Microsoft consumer mail (Outlook.com): Microsoft's published list of
    # consumer domains. Microsoft 365 business tenants are not in it: they
    # keep their own domain as key.
    "outlook.com": (
        "outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com",
        "windowslive.com", "livemail.tw",
        "outlook.at", "outlook.be", "outlook.cl", "outlook.co.id", "outlook.co.il",
        "outlook.co.th", "outlook.com.ar", "outlook.com.au", "outlook.com.br",
        "outlook.com.gr", "outlook.com.tr", "outlook.com.vn", "outlook.cz", "outlook.de",
        "outlook.dk", "outlook.es", "outlook.fr", "outlook.hu", "outlook.ie", "outlook.in",
        "outlook.it", "outlook.jp", "outlook.kr", "outlook.lv", "outlook.my", "outlook.ph",
        "outlook.pt", "outlook.sa", "outlook.sg", "outlook.sk",
        "hotmail.be", "hotmail.ca", "hotmail.cl", "hotmail.co.id", "hotmail.co.il",
        "hotmail.co.in", "hotmail.co.jp", "hotmail.co.kr", "hotmail.co.th", "hotmail.co.uk",
        "hotmail.co.za", "hotmail.com.ar", "hotmail.com.au", "hotmail.com.br",
        "hotmail.com.hk", "hotmail.com.tr", "hotmail.com.tw", "hotmail.com.vn", "hotmail.cz",
        "hotmail.de", "hotmail.dk", "hotmail.es", "hotmail.fi", "hotmail.fr", "hotmail.gr",
        "hotmail.hu", "hotmail.it", "hotmail.lt", "hotmail.lv", "hotmail.my", "hotmail.nl",
        "hotmail.no", "hotmail.ph", "hotmail.rs", "hotmail.se", "hotmail.sg", "hotmail.sk",
        "live.at", "live.be", "live.ca", "live.cl", "live.cn", "live.co.kr", "live.co.uk",
        "live.co.za", "live.com.ar", "live.com.au", "live.com.mx", "live.com.my",
        "live.com.ph", "live.com.pt", "live.com.sg", "live.de", "live.dk", "live.fi",
        "live.fr", "live.hk", "live.ie", "live.in", "live.it", "live.jp", "live.nl",
        "live.no", "live.ru", "live.se",
    ),
    # Yahoo Inc. runs Yahoo Mail and AOL Mail on one infrastructure behind one
    # postmaster and one sender-reputation system, so a sender throttled at
    # Yahoo is throttled at AOL too: AOL shares the yahoo.com key. verizon.net
    # mailboxes moved to AOL Mail in 2017; netscape.net and cs.com
    # (CompuServe) are AOL-hosted; love.com, games.com, wow.com and ygm.com are
    # AOL vanity domains. Yahoo! JAPAN (yahoo.co.jp) is a different company
    # with its own mail system, so it has its own key below.
    "yahoo.com": (
        "yahoo.com", "ymail.com", "rocketmail.com",
        "yahoo.co.uk", "yahoo.de", "yahoo.fr", "yahoo.it", "yahoo.es", "yahoo.nl",
        "yahoo.ie", "yahoo.gr", "yahoo.se", "yahoo.dk", "yahoo.no", "yahoo.ca",
        "yahoo.com.au", "yahoo.co.nz", "yahoo.com.br", "yahoo.com.mx", "yahoo.com.ar",
        "yahoo.co.in", "yahoo.in", "yahoo.com.sg", "yahoo.com.hk", "yahoo.com.tw",
        "yahoo.co.id", "yahoo.com.ph", "yahoo.com.vn", "yahoo.com.my",
        "aol.com", "aim.com", "aol.de", "aol.co.uk", "aol.fr",
        "love.com", "games.com", "wow.com", "ygm.com",
        "verizon.net", "netscape.net", "cs.com",
    ),
    "yahoo.co.jp": ("yahoo.co.jp",),
    "icloud.com": ("icloud.com", "me.com", "mac.com"),
    "proton.me": ("proton.me", "protonmail.com", "protonmail.ch", "pm.me"),
    "zoho.com": ("zoho.com", "zohomail.com", "zohomail.eu", "zohomail.in"),
    # --- DACH ----------------------------------------------------------------
    # GMX, WEB.DE, mail.com and 1&1 all belong to United Internet (1&1 Mail &
    # Media). gmx.com is GMX's international brand and mail.com (with its
    # vanity domains) runs on that same international GMX platform, so they
    # share the gmx.net key. WEB.DE and 1&1's online.de stay separate keys:
    # they are distinct German consumer brands with their own mail hosts, and
    # splitting them keeps a problem at one brand from throttling the others.
    "gmx.net": (
        "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.com", "gmx.fr",
        "mail.com", "email.com", "usa.com", "post.com", "consultant.com", "myself.com",
        "europe.com", "asia.com", "engineer.com", "iname.com", "dr.com",
    ),
    "web.de": ("web.de",),
    "online.de": ("online.de",),
    "t-online.de": ("t-online.de", "magenta.de"),
    "freenet.de": ("freenet.de",),
    "posteo.de": (
        "posteo.de", "posteo.net", "posteo.com", "posteo.at", "posteo.ch", "posteo.eu",
        "posteo.org", "posteo.uk", "posteo.us", "posteo.ca", "posteo.ie", "posteo.es",
        "posteo.nl", "posteo.be", "posteo.lu",
    ),
    "mailbox.org": ("mailbox.org",),
    "bluewin.ch": ("bluewin.ch", "bluemail.ch"),  # Swisscom
    "a1.net": ("a1.net", "aon.at"),  # A1 Telekom Austria; aon.at is its former ISP brand
    # --- rest of Europe ------------------------------------------------------
    "orange.fr": ("orange.fr", "wanadoo.fr"),
    "free.fr": ("free.fr",),
    "sfr.fr": ("sfr.fr", "neuf.fr", "cegetel.net", "club-internet.fr"),
    "laposte.net": ("laposte.net",),
    "libero.it": ("libero.it", "iol.it", "inwind.it", "blu.it", "giallo.it"),
    "virgilio.it": ("virgilio.it",),
    "btinternet.com": ("btinternet.com", "btopenworld.com", "talk21.com"),
    "seznam.cz": ("seznam.cz", "email.cz", "post.cz"),
    "wp.pl": ("wp.pl", "o2.pl", "tlen.pl"),  # Wirtualna Polska bought o2 and Tlen
    "onet.pl": ("onet.pl", "op.pl", "onet.eu", "poczta.onet.pl"),
    "interia.pl": ("interia.pl", "interia.eu", "poczta.fm"),
    "yandex.ru": (
        "yandex.ru", "ya.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua",
        "yandex.com.tr", "narod.ru",
    ),
    "mail.ru": ("mail.ru", "bk.ru", "inbox.ru", "list.ru", "internet.ru"),
    "rambler.ru": ("rambler.ru", "lenta.ru", "ro.ru", "autorambler.ru", "myrambler.ru"),
    # --- Asia, Americas, Oceania ---------------------------------------------
    "qq.com": ("qq.com", "foxmail.com", "vip.qq.com"),  # Tencent
    "163.com": ("163.com", "126.com", "yeah.net", "188.com", "vip.163.com", "vip.126.com"),
    "naver.com": ("naver.com",),
    "hanmail.net": ("hanmail.net", "daum.net", "kakao.com"),  # Kakao (Daum) Mail
    "rediffmail.com": ("rediffmail.com",),
    "uol.com.br": ("uol.com.br", "bol.com.br"),
    "comcast.net": ("comcast.net",),
    # AT&T's own list of its consumer mail domains (the former Bell companies
    # and Prodigy); AT&T runs its own inbound gateways and postmaster.
    "att.net": (
        "att.net", "sbcglobal.net", "bellsouth.net", "pacbell.net", "swbell.net",
        "ameritech.net", "prodigy.net", "flash.net", "snet.net", "nvbell.net", "wans.net",
    ),
    "bigpond.com": ("bigpond.com", "bigpond.net.au"),  # Telstra
}


def _alias_table(providers: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """Flatten PROVIDERS into alias -> key, refusing an alias claimed twice."""
    table: dict[str, str] = {}
    for key, aliases in providers.items():
        for alias in aliases:
            owner = table.setdefault(alias, key)
            if owner != key:
                raise ValueError(f"{alias!r} is listed under both {owner!r} and {key!r}")
    return table


_KEY_BY_ALIAS: dict[str, str] = _alias_table(PROVIDERS)

# RFC 5321 limits: 64 octets of local part, 254 for a usable forward path.
_MAX_LOCAL_PART = 64
_MAX_ADDRESS = 254


def provider_key(domain: str) -> str:
    """Canonical provider key for a (lower-cased or not) recipient domain.

    A trailing dot (fully qualified form) and case do not matter; a domain
    that belongs to no known provider is its own key.
    """
    domain = domain.lower()
    if domain.endswith("."):
        domain = domain.rstrip(".")
    return _KEY_BY_ALIAS.get(domain, domain)


def split_address(address: str) -> tuple[str, str] | None:
    """(local_part, domain_lowercased) of an email address, or None if it is not plausible.

    Plausible: exactly one '@', a non-empty local part of at most 64 chars, a
    domain of dot-separated non-empty labels made of letters, digits and '-'
    (a trailing dot is dropped), no whitespace or control characters, at most
    254 chars in all. Quoted local parts and IP literals are rejected: no
    mailbox provider hands those out. The local part keeps its case, since
    only the domain is case-insensitive by standard.
    """
    if len(address) > _MAX_ADDRESS or address.count("@") != 1:
        return None
    local, _, domain = address.partition("@")
    if not local or len(local) > _MAX_LOCAL_PART or " " in local or not local.isprintable():
        return None
    if domain.endswith("."):
        domain = domain[:-1]
    # str methods instead of a regex: each check is one C-level pass.
    if (
        "." not in domain
        or domain.startswith(".")
        or domain.endswith(".")
        or ".." in domain
        or not domain.replace("-", "").replace(".", "").isalnum()
    ):
        return None
    return local, domain.lower()
