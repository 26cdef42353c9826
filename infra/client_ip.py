"""The client's address, as far as the proxies Arbiter is told to trust can vouch for it.

`X-Forwarded-For` is a list anyone can start: a proxy appends the address it received the request from, so only
the entries added by proxies we trust say anything. Walking from the right (the peer of the connection, then
`X-Forwarded-For` from its last entry back), every address that is a trusted proxy is skipped; the first one that
is not is the client. Entries left of it were written by the client itself and are never read.

Which proxies are trusted (settings, from the environment):

- `ARBITER_TRUSTED_PROXIES`: networks (`10.0.0.0/8`, `172.18.0.5`) whose addresses are proxies;
- `ARBITER_TRUSTED_PROXY_COUNT`: this many hops nearest the server are proxies, whatever their address (for a
  fixed chain, such as docker-compose's one Caddy in front of servers that publish no port of their own).

With neither set (the default) no proxy is trusted and the client is the connection's peer (`REMOTE_ADDR`).
django-axes keys its lockout on this address (`AXES_CLIENT_IP_CALLABLE`), so a forged header neither avoids a
lockout nor resets one. The servers must hand Django the real peer: uvicorn runs with `--no-proxy-headers`
(config/server.py); gunicorn never rewrites `REMOTE_ADDR`.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    """The networks of `ARBITER_TRUSTED_PROXIES`; a bad entry is an error at the first request, naming it."""
    networks = []
    for entry in spec:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as e:
            raise ValueError(
                f"ARBITER_TRUSTED_PROXIES: {entry!r} is not an address or network ({e})"
            ) from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def resolve(peer: str, forwarded_for: str, *, networks: tuple[Network, ...], count: int) -> str:
    """The client address given the connection's `peer`, the `X-Forwarded-For` header and the trusted proxies."""
    chain = [part for part in forwarded_for.split(",") if part.strip()] + [peer]
    i = len(chain) - 1
    hops = 0
    while i > 0:
        address = _address(chain[i])
        if address is None:
            break  # garbage where a proxy's entry should be: trust nothing further left
        if hops < count or any(address in net for net in networks):
            hops += 1
            i -= 1
            continue
        break
    address = _address(chain[i])
    return str(address) if address is not None else peer


def client_ip(request: HttpRequest) -> str:
    """`AXES_CLIENT_IP_CALLABLE`: the request's client address (see the module docstring)."""
    peer = request.META.get("REMOTE_ADDR", "") or ""
    count = settings.ARBITER_TRUSTED_PROXY_COUNT
    networks = trusted_networks(tuple(settings.ARBITER_TRUSTED_PROXIES))
    if not count and not networks:
        return peer
    return resolve(peer, request.META.get("HTTP_X_FORWARDED_FOR", ""), networks=networks, count=count)
