"""Human versus machine engagement: a first, rule-based cut.

Apple Mail Privacy Protection fetches every image through Apple's proxy
(addresses in 17.0.0.0/8), and security scanners follow links with their own
user agents; neither is a person reading. The full classifier (timing since
delivery, many links in one second, provider image proxies) is the
metrics work's; this module keeps the rule set in one place.

>>> is_human_interaction("open", "Mozilla/5.0", "17.58.1.2")
False
>>> is_human_interaction("open", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile", "84.1.2.3")
True
>>> is_human_interaction("click", "Barracuda Sentinel (EE)", "1.2.3.4")
False
>>> is_human_interaction("delivered", "", "")
True
"""

from __future__ import annotations

_MACHINE_OPEN_AGENTS = ("googleimageproxy", "yahoomailproxy", "ymailproxy", "applemail proxy")
_BOT_AGENTS = ("barracuda", "mimecast", "proofpoint", "symantec", "messagelabs", "trend micro",
               "safelinks", "bot", "crawler", "spider", "scanner", "python-requests", "curl/",
               "go-http-client", "headless")


def is_human_interaction(event_type: str, user_agent: str, ip: str) -> bool:
    """False for machine opens and bot clicks; True for everything else."""
    if event_type == "open":
        if ip.startswith("17."):
            return False
        agent = user_agent.lower()
        return not (agent == "mozilla/5.0" or any(a in agent for a in _MACHINE_OPEN_AGENTS))
    if event_type == "click":
        agent = user_agent.lower()
        return bool(agent) and not any(a in agent for a in _BOT_AGENTS)
    return True
