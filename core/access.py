"""Who is asking and whether they may pass: the client's address (X-Forwarded-For believed only from trusted
proxies), a constant-time passcode comparison, and a growing delay after repeated failures, one attempt at a time
per visitor."""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigurationError

FREE_ATTEMPTS = 3
MAX_DELAY_S = 30.0
FORGET_AFTER_S = 3600.0
UNKNOWN = "ip:unknown"
IPV6_PREFIX = 64  # one subscriber is usually handed a whole /64: rotating within it is not a new visitor

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(value: Any) -> tuple[Network, ...]:
    """REPRO_TRUSTED_PROXIES: addresses or CIDR networks separated by commas (or a list in the secrets);
    empty trusts no proxy."""
    parts = value if isinstance(value, (list, tuple)) else str(value or "").split(",")
    networks = []
    for part in filter(None, (str(part).strip() for part in parts)):
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"REPRO_TRUSTED_PROXIES: {part!r} is not an IP address or network. List the addresses of the "
                "reverse proxies in front of the app, separated by commas (like 10.0.0.5, 172.16.0.0/12), "
                "or leave it empty to trust none.") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address as a proxy writes it (1.2.3.4, 1.2.3.4:5678, 2001:db8::1, [2001:db8::1]:443), else None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped  # a dual-stack socket's ::ffff:1.2.3.4 is the IPv4 client 1.2.3.4
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def client_identity(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """"ip:<address>" for the client: the direct peer, unless it is a trusted proxy; then, walking X-Forwarded-For
    from the right, the first hop that is not a trusted proxy (hops further left are whatever the client wrote).
    An IPv6 client is its /64; every peer that is not an address shares "ip:unknown", so none can pick its own."""
    client = _address(peer)
    if client is None:
        return UNKNOWN
    for hop in reversed(forwarded_for.split(",")):
        if not _is_trusted(client, trusted):
            break
        written = _address(hop)
        if written is None:
            break  # a trusted proxy handed over something unreadable: keep the last address vouched for
        client = written
    if isinstance(client, ipaddress.IPv6Address):
        return f"ip:{ipaddress.IPv6Network((client, IPV6_PREFIX), strict=False)}"
    return f"ip:{client}"


def passcode_matches(given: str, expected: str) -> bool:
    """Compare in constant time, so the time taken says nothing about how much of the passcode was right."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def failure_delay(failures: int) -> float:
    """Seconds to wait before checking the next attempt: none for the first few, then doubling up to a cap."""
    if failures < FREE_ATTEMPTS:
        return 0.0
    return min(2.0 ** (failures - FREE_ATTEMPTS), MAX_DELAY_S)


@dataclass
class _Visitor:
    """One visitor's failures; `lock` lines their attempts up, `waiting` counts attempts holding or awaiting it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    failures: int = 0
    last_attempt: float = 0.0
    waiting: int = 0


class FailureLog:
    """Failed passcode attempts per visitor for the whole process, so a new tab or session does not start afresh.
    A visitor's attempts are checked one at a time, each after its own delay, so parallel guesses wait in line;
    a visitor without an attempt for `forget_after_s` is forgotten."""

    def __init__(self, delay: Callable[[int], float] = failure_delay, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, forget_after_s: float = FORGET_AFTER_S) -> None:
        self._delay, self._sleep, self._clock, self._forget_after_s = delay, sleep, clock, forget_after_s
        self._visitors: dict[str, _Visitor] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Visitors remembered."""
        with self._lock:
            return len(self._visitors)

    def attempt(self, visitor: str, given: str, expected: str) -> bool:
        """Wait out this visitor's delay, compare, and count the failure (or forget the failures on a match)."""
        entry = self._enter(visitor)
        try:
            with entry.lock:
                self._sleep(self._delay(entry.failures))
                matches = passcode_matches(given, expected)
                entry.failures = 0 if matches else entry.failures + 1
                entry.last_attempt = self._clock()
                return matches
        finally:
            with self._lock:
                entry.waiting -= 1

    def _enter(self, visitor: str) -> _Visitor:
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            entry = self._visitors.setdefault(visitor, _Visitor(last_attempt=now))
            entry.waiting += 1
            return entry

    def _forget_idle(self, now: float) -> None:
        """Drop visitors with no attempt in line and no failure left to remember, so the log does not grow."""
        idle = [name for name, entry in self._visitors.items() if not entry.waiting
                and (not entry.failures or now - entry.last_attempt >= self._forget_after_s)]
        for name in idle:
            del self._visitors[name]
