"""What machine opens and clicks look like: proxies' networks and user agents, scanners' user agents (data, not code)."""

from __future__ import annotations

# Networks whose opens are a mail provider's proxy fetching images, not a person reading. The
# tracking service logs addresses truncated to /24 (IPv4) or /48 (IPv6) by default
# (tracking.ip = truncate): every network here is at least that wide, so a truncated address
# still falls inside. A hashed address matches nothing.
NETWORKS: dict[str, tuple[str, ...]] = {
    # Apple Mail Privacy Protection fetches every message's images through Apple's own network
    # (17.0.0.0/8 is Apple's) and the egress ranges Apple publishes for it.
    "apple": ("17.0.0.0/8", "2620:149::/32", "2a01:b740::/32", "2403:300::/32"),
    # Gmail's image proxy (GoogleImageProxy) runs from Google's published ranges.
    "google": ("66.102.0.0/20", "66.249.80.0/20", "64.233.160.0/19", "72.14.192.0/18", "74.125.0.0/16",
               "209.85.128.0/17", "2001:4860::/32"),
    # Yahoo and AOL's image proxy (YahooMailProxy).
    "yahoo": ("98.136.0.0/14", "74.6.0.0/16", "66.196.64.0/18", "106.10.0.0/16", "2001:4998::/32"),
}

# Apple's proxy sends this and nothing more; Apple Mail itself names its WebKit version.
APPLE_PROXY_AGENT = "Mozilla/5.0"

# (lower-case substring of the user agent, the events it flags, reason). First match wins.
AGENTS: tuple[tuple[str, str, str], ...] = (
    ("googleimageproxy", "open", "image_proxy:google"),
    ("ggpht.com", "open", "image_proxy:google"),
    ("yahoomailproxy", "open", "image_proxy:yahoo"),
    ("yahoo! slurp", "any", "image_proxy:yahoo"),
    ("mail.ru", "open", "image_proxy:mailru"),
    ("yandex", "open", "image_proxy:yandex"),
    ("front-image-proxy", "open", "image_proxy:front"),
    ("superhuman", "open", "image_proxy:superhuman"),
    # Link scanners of security gateways, and bots that fetch a link to preview it.
    ("barracuda", "any", "scanner:barracuda"),
    ("mimecast", "any", "scanner:mimecast"),
    ("proofpoint", "any", "scanner:proofpoint"),
    ("ppops", "any", "scanner:proofpoint"),
    ("safelinks", "any", "scanner:microsoft"),
    ("safe links", "any", "scanner:microsoft"),
    ("bingpreview", "any", "scanner:microsoft"),
    ("microsoft defender", "any", "scanner:microsoft"),
    ("microsoft office existence discovery", "any", "scanner:microsoft"),
    ("ironport", "any", "scanner:cisco"),
    ("cisco", "any", "scanner:cisco"),
    ("symantec", "any", "scanner:symantec"),
    ("messagelabs", "any", "scanner:symantec"),
    ("trend micro", "any", "scanner:trendmicro"),
    ("forcepoint", "any", "scanner:forcepoint"),
    ("sophos", "any", "scanner:sophos"),
    ("fortiguard", "any", "scanner:fortinet"),
    ("zscaler", "any", "scanner:zscaler"),
    ("trustwave", "any", "scanner:trustwave"),
    ("headlesschrome", "any", "scanner:headless"),
    ("phantomjs", "any", "scanner:headless"),
    ("python-requests", "any", "scanner:script"),
    ("python-urllib", "any", "scanner:script"),
    ("go-http-client", "any", "scanner:script"),
    ("curl/", "any", "scanner:script"),
    ("wget/", "any", "scanner:script"),
    ("slackbot", "any", "preview:slack"),
    ("skypeuripreview", "any", "preview:skype"),
    ("facebookexternalhit", "any", "preview:facebook"),
    ("linkedinbot", "any", "preview:linkedin"),
    ("twitterbot", "any", "preview:twitter"),
    ("whatsapp", "any", "preview:whatsapp"),
    ("googlebot", "any", "bot:google"),
    ("bot;", "any", "bot"),
    ("spider", "any", "bot"),
    ("crawler", "any", "bot"),
)
