"""What a visitor may do: limits per experiment, requests per hour, and one cap on requests in flight for the whole
process (so ten visitors at once cannot set off a storm of 429s); and who the visitor is: the client's address
(X-Forwarded-For believed only from trusted proxies), a constant-time passcode comparison, and a growing delay after
repeated failures, one attempt at a time per visitor."""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import ConfigurationError, InvalidRequest
from core.models import MAX_PROMPT_CHARS, MAX_RUNS, MAX_SWEEP_REQUESTS, MAX_TOKENS_LIMIT, RunRequest

if TYPE_CHECKING:
    from core.sweep import SweepPlan

HOUR_S = 3600.0
FREE_ATTEMPTS = 3
MAX_DELAY_S = 30.0
FORGET_AFTER_S = 3600.0
UNKNOWN = "ip:unknown"
IPV6_PREFIX = 64  # one subscriber is usually handed a whole /64: rotating within it is not a new visitor

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Limits:
    """Safe defaults for a shared showcase; each one is a REPRO_* variable (see LIMIT_VARIABLES)."""

    max_runs: int = 50
    max_tokens: int = 1024
    max_prompt_chars: int = 8000
    max_sweep_requests: int = 300
    confirm_above: int = 100
    requests_per_hour: int = 600
    global_concurrency: int = 64  # a 50-run batch goes out in one wave; raise it for REPRO_MAX_RUNS up to 1,000

    def __post_init__(self) -> None:
        bounds = {"max_runs": MAX_RUNS, "max_tokens": MAX_TOKENS_LIMIT, "max_prompt_chars": MAX_PROMPT_CHARS,
                  "max_sweep_requests": MAX_SWEEP_REQUESTS,
                  "confirm_above": 100_000, "requests_per_hour": 10_000_000, "global_concurrency": 1_000}
        for name, top in bounds.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise ConfigurationError(
                    f"{LIMIT_VARIABLES[name]} must be a whole number from 1 to {top:,}, got {value!r}.")

    def check(self, request: RunRequest, requests: int, *, sweep: SweepPlan | None = None) -> None:
        """Refuse an experiment (or a sweep, whose cells are experiments too) over the limits, naming the limit and
        its variable."""
        if sweep:
            self._within("max_sweep_requests", requests, "requests in one sweep")
            self._within("max_runs", sweep.runs, "runs per cell")
        else:
            self._within("max_runs", requests, "runs")
        if request.max_tokens > self.max_tokens:
            raise InvalidRequest(f"max_tokens {request.max_tokens} is over this instance's limit of {self.max_tokens} "
                                 f"({LIMIT_VARIABLES['max_tokens']}).")
        for label, text in (("prompt", request.prompt), ("system prompt", request.system)):
            if len(text) > self.max_prompt_chars:
                raise InvalidRequest(f"The {label} has {len(text):,} characters; this instance allows "
                                     f"{self.max_prompt_chars:,} ({LIMIT_VARIABLES['max_prompt_chars']}). Shorten it.")

    def _within(self, name: str, count: int, what: str) -> None:
        if count > getattr(self, name):
            raise InvalidRequest(f"{count} {what} is over this instance's limit of {getattr(self, name)} "
                                 f"({LIMIT_VARIABLES[name]}).")


LIMIT_VARIABLES = {
    "max_runs": "REPRO_MAX_RUNS",
    "max_tokens": "REPRO_MAX_TOKENS",
    "max_prompt_chars": "REPRO_MAX_PROMPT_CHARS",
    "max_sweep_requests": "REPRO_MAX_SWEEP_REQUESTS",
    "confirm_above": "REPRO_CONFIRM_ABOVE",
    "requests_per_hour": "REPRO_REQUESTS_PER_HOUR",
    "global_concurrency": "REPRO_GLOBAL_CONCURRENCY",
}


def quota_refusal(requests: int, left: int, per_hour: int, frees_in_s: float | None) -> str:
    """Why a take is refused, and in how many minutes enough frees up (when it ever can): the same words for the
    process's Quota and the replicas' shared one."""
    wait = f" Enough frees up in {max(1, round(frees_in_s / 60))} min." if frees_in_s is not None else ""
    return (f"This needs {requests} requests but {left} of your {per_hour} per hour are left "
            f"(REPRO_REQUESTS_PER_HOUR).{wait}")


class QuotaLedger(Protocol):
    """A visitor's hourly quota, kept by this process (Quota) or by every replica (core.shared.SharedQuota)."""

    per_hour: int

    def remaining(self) -> int: ...

    def take(self, requests: int) -> None: ...


class Quota:
    """A sliding hour of requests for one visitor; thread-safe, since a visitor's reruns may overlap."""

    def __init__(self, per_hour: int, clock=time.monotonic):
        self.per_hour = per_hour
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - HOUR_S:
            self._sent.popleft()

    def remaining(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return self.per_hour - len(self._sent)

    def take(self, requests: int) -> None:
        """Count `requests` now, or refuse them all (nothing sent) with when enough frees up."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            left = self.per_hour - len(self._sent)
            if requests > left:
                frees_in = None
                if requests <= self.per_hour and self._sent:
                    frees_in = self._sent[requests - left - 1] + HOUR_S - now
                raise InvalidRequest(quota_refusal(requests, left, self.per_hour, frees_in))
            self._sent.extend([now] * requests)


class Quotas:
    """Every visitor's Quota in this process, by identity (a signed-in user keeps theirs across sessions). A visitor
    with nothing counted in the last hour and not asked for in `forget_after_s` is forgotten, so the registry holds
    the recent visitors, not every one ever seen."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, forget_after_s: float = FORGET_AFTER_S) -> None:
        self._clock, self._forget_after_s = clock, forget_after_s
        self._quotas: dict[str, tuple[Quota, float]] = {}  # identity: its quota, when it was last asked for
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Visitors remembered."""
        with self._lock:
            return len(self._quotas)

    def for_visitor(self, identity: str, per_hour: int) -> Quota:
        """`identity`'s quota (a new one when REPRO_REQUESTS_PER_HOUR has changed)."""
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            quota = self._quotas.get(identity, (None, now))[0]
            if quota is None or quota.per_hour != per_hour:
                quota = Quota(per_hour, self._clock)
            self._quotas[identity] = quota, now
            return quota

    def _forget_idle(self, now: float) -> None:
        # Not on a full quota alone: a session may have just been handed it, and its take must not be lost.
        idle = [identity for identity, (quota, asked) in self._quotas.items()
                if now - asked >= self._forget_after_s and quota.remaining() == quota.per_hour]
        for identity in idle:
            del self._quotas[identity]


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
