"""The Backend seam and the provider registry: a provider module calls `register(Provider(...))` once at import.

A Provider names its config class (a frozen dataclass that reads itself from the merged settings source) and a
factory that builds a Backend from that config. core.settings reads every registered config; make_backend builds
the one chosen. Nothing here imports core.settings: the settings reach the factories as a BackendSettings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from core.errors import ConfigurationError
from core.models import BackendInfo, Completion, RunRequest


@runtime_checkable
class Backend(Protocol):
    info: BackendInfo
    max_concurrency: int | None  # None: the runner's cap alone decides

    async def complete(self, request: RunRequest) -> Completion:
        """Send one request; raise BackendError (with a RunError) when it fails."""


class ProviderConfig(Protocol):
    """One provider's settings, read from the merged source; secrets stay out of its repr."""

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> ProviderConfig:
        """The config from the merged variables (core.settings.read_sources), without other providers' claims."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values to scrub from everything any server sends back."""

    def missing(self) -> list[str]:
        """The variables still to set before this provider can be used (empty when ready)."""

    def touched(self) -> bool:
        """Whether any of the provider's own variables is set (a half-set provider earns a note)."""

    def check(self) -> None:
        """Refuse, before anything is sent, a value that cannot be used (ConfigurationError naming its variable)."""

    def describe(self) -> list[tuple[str, str]]:
        """(label, value) rows safe to show: model, endpoint host, API version, whether a key is set."""


class BackendSettings(Protocol):
    """What make_backend and the factories read of core.settings.Settings."""

    @property
    def providers(self) -> Mapping[str, ProviderConfig]: ...

    @property
    def timeout_s(self) -> float: ...

    @property
    def max_retries(self) -> int: ...

    @property
    def secrets(self) -> tuple[str, ...]: ...

    def resolve(self) -> str: ...


@dataclass(frozen=True)
class Provider:
    """A family of backends: its name (REPRO_BACKEND, --backend), its title for people, whether it costs money, its
    config class and the factory that builds a Backend from that config. `claims` names the variables it takes
    from the source so that no other provider reads them; a `fallback` is ready everywhere, so auto-selection
    tries it last."""

    name: str
    title: str
    paid: bool
    config: type[ProviderConfig]
    build: Callable[[Any, BackendSettings], Backend]
    claims: Callable[[Mapping[str, Any]], Iterable[str]] = lambda source: ()
    fallback: bool = False


_registered: dict[str, Provider] = {}


def register(provider: Provider) -> None:
    """Offer `provider` everywhere a backend is chosen; a name is registered once."""
    if _registered.get(provider.name, provider) is not provider:
        raise ValueError(f"A provider named {provider.name!r} is already registered.")
    _registered[provider.name] = provider


def providers() -> tuple[Provider, ...]:
    """Every registered provider in auto-selection order: registration order, fallbacks last."""
    return tuple(sorted(_registered.values(), key=lambda p: p.fallback))


def provider(name: str) -> Provider:
    try:
        return _registered[name]
    except KeyError:
        raise ConfigurationError(f"There is no backend {name!r}; choose one of {', '.join(_registered)}.") from None


def make_backend(settings: BackendSettings) -> Backend:
    """The backend `settings.backend` names (auto: the first ready), validated before anything is sent."""
    name = settings.resolve()
    return provider(name).build(settings.providers[name], settings)


def import_plugins(modules: str) -> None:
    """Import each module named in `modules` (REPRO_PROVIDERS, comma-separated); each registers its providers at
    import."""
    for module in filter(None, (name.strip() for name in modules.split(","))):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"REPRO_PROVIDERS names {module!r}, which cannot be imported: {exc}.") from None


def setting(source: Mapping[str, Any], *names: str) -> Any:
    """The value of the first of `names` that is set in source (an empty value counts as unset), else None."""
    for name in names:
        value = source.get(name)
        if value not in (None, ""):
            return value
    return None


def unset(needed: Mapping[str, Any]) -> list[str]:
    """The names in `needed` whose value is empty: what missing() reports."""
    return [name for name, value in needed.items() if not value]
