"""Every setting, read in one place: explicit arguments > Streamlit secrets > environment > .env.

Settings holds the backend choice and the time limits every backend shares, each registered provider's config
(core.backends), the limits (core.policy), where the history is kept (core.history) and who may pass the gate.
load_settings reads all of it and raises ConfigurationError at the first wrong value. read_limits, read_history and
read_access read one section of the merged source each, for the app, which stops at the gate when access is set up
wrong but still shows the history when a backend is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dotenv import dotenv_values

from core.backends import ProviderConfig, providers
from core.backends.registry import setting
from core.errors import ConfigurationError
from core.history import HistoryLocation
from core.policy import LIMIT_VARIABLES, Limits, Network, parse_trusted_proxies


def backend_choices() -> tuple[str, ...]:
    """What REPRO_BACKEND (and --backend) accepts: auto, then every registered provider in auto-selection order."""
    return ("auto", *(p.name for p in providers()))


@dataclass(frozen=True)
class Access:
    """Who may pass the gate: signed-in users when the secrets have an [auth] section (`sign_in`), else whoever knows
    APP_PASSCODE when it is set, else anyone. X-Forwarded-For is believed only from `trusted_proxies`
    (REPRO_TRUSTED_PROXIES)."""

    passcode: str | None = field(default=None, repr=False)
    trusted_proxies: tuple[Network, ...] = ()
    sign_in: bool = False

    @property
    def gated(self) -> bool:
        """Whether a sign-in or a passcode stands between a visitor and the backends."""
        return self.sign_in or bool(self.passcode)


def _provider_configs(source: Mapping[str, Any]) -> dict[str, ProviderConfig]:
    """Each registered provider's config, in auto-selection order; a variable one provider claims (see
    core.backends.Provider) is hidden from every other."""
    claims = {p.name: set(p.claims(source)) for p in providers()}
    configs = {}
    for p in providers():
        hidden = set().union(*(claimed for name, claimed in claims.items() if name != p.name))
        configs[p.name] = p.config.from_source({k: v for k, v in source.items() if k not in hidden})
    return configs


@dataclass(frozen=True)
class Settings:
    """Everything core needs to know about this instance; secrets are left out of repr."""

    backend: str = "auto"
    timeout_s: float = 60.0
    max_retries: int = 2
    providers: Mapping[str, ProviderConfig] = field(default_factory=lambda: _provider_configs({}))
    limits: Limits = field(default_factory=Limits)
    history: HistoryLocation = field(default_factory=HistoryLocation)
    access: Access = field(default_factory=Access)

    def __post_init__(self) -> None:
        choices = backend_choices()
        if self.backend not in choices:
            raise ConfigurationError(
                f"Unknown backend {self.backend!r}; choose one of {', '.join(choices)} (REPRO_BACKEND).")
        if not 0 < self.timeout_s <= 600:
            raise ConfigurationError(f"REPRO_TIMEOUT must be above 0 and at most 600 seconds, got {self.timeout_s}.")
        if not 0 <= self.max_retries <= 10:
            raise ConfigurationError(f"REPRO_MAX_RETRIES must be from 0 to 10, got {self.max_retries}.")

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every provider's secrets and the database password: what is scrubbed from anything shown."""
        return (*(secret for config in self.providers.values() for secret in config.secrets), *self.history.secrets)

    def with_overrides(self, **overrides: Any) -> Settings:
        """These settings with each override that is not None: a field of Settings (backend="local", timeout_s=5) or
        a field of one provider's config, named provider_field (local_mode="cache", azure_deployment="gpt-4o")."""
        own, configs = {}, dict(self.providers)
        for key, value in overrides.items():
            if value is None:
                continue
            if key in self.__dataclass_fields__:
                own[key] = value
                continue
            name = max((name for name in configs if key.startswith(f"{name}_")), key=len, default=None)
            if name is None:
                raise TypeError(f"There is no setting {key!r}.")
            configs[name] = replace(configs[name], **{key.removeprefix(f"{name}_"): value})
        return replace(self, **{"providers": configs, **own})

    def available(self) -> list[str]:
        """Providers ready to use, in auto-selection order; the embedded model is always last."""
        return [name for name, config in self.providers.items() if not config.missing()]

    def resolve(self) -> str:
        """The provider `backend` names; for auto, the first ready one. Refused when it misses a setting or holds one
        that cannot be used (a key that cannot go into an HTTP header)."""
        name = self.available()[0] if self.backend == "auto" else self.backend
        config = self.providers[name]
        missing = config.missing()
        if missing:
            raise ConfigurationError(f"The {name} backend needs {', '.join(missing)}.")
        config.check()
        return name

    def notes(self) -> list[str]:
        """Warnings about half-configured providers that auto-selection skipped."""
        return [f"{name} is partly configured but needs {', '.join(config.missing())}; it was skipped."
                for name, config in self.providers.items() if config.touched() and config.missing()]


def read_sources(
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike | None = ".env",
) -> dict[str, Any]:
    """Every variable from .env < environment < secrets (top-level secrets only; sections such as [auth] stay out)."""
    source: dict[str, Any] = {}
    if dotenv_path and os.path.exists(dotenv_path):
        source.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    source.update(os.environ if environ is None else environ)
    source.update({k: v for k, v in (secrets or {}).items() if not isinstance(v, Mapping)})
    return source


def read_limits(source: Mapping[str, Any]) -> Limits:
    """The limits (core.policy.LIMIT_VARIABLES) from the merged source; absent variables keep their defaults."""
    values = {}
    for name, variable in LIMIT_VARIABLES.items():
        raw = source.get(variable)
        if raw in (None, ""):
            continue
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{variable} must be a whole number, got {raw!r}.") from None
    return Limits(**values)


def read_history(source: Mapping[str, Any]) -> HistoryLocation:
    """PostgreSQL at DATABASE_URL when it is set, else SQLite at REPRO_HISTORY_PATH (or the default file)."""
    return HistoryLocation(database_url=source.get("DATABASE_URL"), sqlite_path=source.get("REPRO_HISTORY_PATH"))


def read_access(source: Mapping[str, Any], secrets: Mapping[str, Any] | None = None) -> Access:
    """APP_PASSCODE and REPRO_TRUSTED_PROXIES from the merged source; whether `secrets` has an [auth] section."""
    passcode = source.get("APP_PASSCODE")
    return Access(passcode=str(passcode) if passcode else None,
                  trusted_proxies=parse_trusted_proxies(source.get("REPRO_TRUSTED_PROXIES")),
                  sign_in=isinstance((secrets or {}).get("auth"), Mapping))


def load_settings(
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike | None = ".env",
    **overrides: Any,
) -> Settings:
    """Merge the sources (see read_sources), read every section, then apply explicit overrides (see
    Settings.with_overrides)."""
    source = read_sources(secrets, environ, dotenv_path)
    try:
        timeout_s = float(setting(source, "REPRO_TIMEOUT") or 60)
        max_retries = int(setting(source, "REPRO_MAX_RETRIES") or 2)
    except ValueError as exc:
        raise ConfigurationError(f"REPRO_TIMEOUT and REPRO_MAX_RETRIES must be numbers: {exc}.") from None
    settings = Settings(
        backend=str(setting(source, "REPRO_BACKEND") or "auto").lower(),
        timeout_s=timeout_s,
        max_retries=max_retries,
        providers=_provider_configs(source),
        limits=read_limits(source),
        history=read_history(source),
        access=read_access(source, secrets),
    )
    return settings.with_overrides(**overrides)
