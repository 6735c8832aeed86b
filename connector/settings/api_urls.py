"""Where a provider's API may be: the check every ``api_base_url`` (an account's, or the
deployment's ``TEXTBACK_HUBSPOT_API_BASE_URL``) goes through before credentials are sent there.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

#: Where a provider API may be: what a refused ``api_base_url`` is told to look like.
API_URL_HINT = "must be an https URL without a user name, such as https://api.example.com"
#: Names of cloud metadata services (their addresses are refused by range below).
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
#: Addresses that are never a provider's API: link-local (cloud metadata at 169.254.169.254),
#: AWS's IPv6 metadata address and Alibaba Cloud's metadata address.
_FORBIDDEN_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_HOST_NAME = re.compile(r"^(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)*[^\W_](?:[\w-]{0,61}[^\W_])?$")


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, as the HTTP client would read it; None for a name.

    Numeric forms the resolver accepts (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``127.1``) are
    read the way it reads them, so they cannot slip past the checks.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def api_url_problem(value: str, *, allow_http_loopback: bool) -> str | None:
    """Why ``value`` may not be a provider's API base URL, in plain words; None when it may.

    Credentials are sent there, so it must be https to a named host, with no user name or
    password, query or fragment, and never to a link-local or cloud metadata address. Plain http
    is allowed only to this machine (127.0.0.0/8, ::1, localhost) and only with
    ``allow_http_loopback`` (``TEXTBACK_ALLOW_HTTP_LOOPBACK=true``, for local test servers).
    """
    if "\\" in value or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return f"{API_URL_HINT} (no spaces, backslashes or control characters)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"{API_URL_HINT} (this one has a bad host or port)"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return API_URL_HINT
    if "@" in parts.netloc:
        return f"{API_URL_HINT} (this one names a user before the host)"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return f"{API_URL_HINT} (this one has no host)"
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return f"{API_URL_HINT} (no ?query or #fragment)"
    address = _host_address(host)
    if address is None and not _HOST_NAME.match(host):
        return f"{API_URL_HINT} (this one has a bad host name)"
    if host in _METADATA_HOSTS or (
        address is not None and any(address in net for net in _FORBIDDEN_NETWORKS)
    ):
        return "must not point at a link-local or cloud metadata address such as 169.254.169.254"
    if address is not None and address.is_unspecified:
        return f"{API_URL_HINT} ({host} is not an address a request can go to)"
    if scheme == "http":
        loopback = host == "localhost" or (address is not None and address.is_loopback)
        if not loopback:
            return API_URL_HINT
        if not allow_http_loopback:
            return (f"{API_URL_HINT}; plain http to this machine is for local test servers and "
                    "needs TEXTBACK_ALLOW_HTTP_LOOPBACK=true")
    return None
