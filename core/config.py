"""Settings for every backend: explicit arguments > values the UI passes in (Streamlit secrets) > environment > .env.

Variable names are the classic Azure demo's (OPENAI_API_BASE, OPENAI_API_VERSION, OPENAI_API_KEY, OPENAI_API_DEPLOY)
and the SDK's own (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY, AZURE_OPENAI_DEPLOYMENT, OPENAI_BASE_URL, …).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from core.errors import ConfigurationError

PROVIDERS = ("azure", "compatible", "openai", "local")
BACKEND_CHOICES = ("auto", *PROVIDERS)
LOCAL_MODES = ("deterministic", "cache")
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
_NOT_HEADER_TEXT = re.compile(r"[^\x20-\x7e]")  # what an HTTP header value may not hold: controls and non-ASCII


@dataclass(frozen=True)
class Settings:
    """Everything a backend needs; secrets are left out of repr and of public()."""

    backend: str = "auto"
    azure_endpoint: str | None = None
    azure_api_key: str | None = field(default=None, repr=False)
    azure_api_version: str | None = None
    azure_deployment: str | None = None
    azure_key_variable: str = "AZURE_OPENAI_API_KEY"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    openai_model: str = DEFAULT_OPENAI_MODEL
    compatible_base_url: str | None = None
    compatible_api_key: str | None = field(default=None, repr=False)
    compatible_model: str | None = None
    local_mode: str = "deterministic"
    local_model_path: str | None = None
    timeout_s: float = 60.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_CHOICES:
            raise ConfigurationError(
                f"Unknown backend {self.backend!r}; choose one of {', '.join(BACKEND_CHOICES)} (REPRO_BACKEND)."
            )
        if self.local_mode not in LOCAL_MODES:
            raise ConfigurationError(
                f"Unknown local mode {self.local_mode!r}; choose deterministic or cache (REPRO_LOCAL_MODE)."
            )
        if not 0 < self.timeout_s <= 600:
            raise ConfigurationError(f"REPRO_TIMEOUT must be above 0 and at most 600 seconds, got {self.timeout_s}.")
        if not 0 <= self.max_retries <= 10:
            raise ConfigurationError(f"REPRO_MAX_RETRIES must be from 0 to 10, got {self.max_retries}.")

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.azure_api_key, self.openai_api_key, self.compatible_api_key) if s)

    def with_overrides(self, **overrides: Any) -> Settings:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def missing(self, provider: str) -> list[str]:
        """The variables still to set before `provider` can be used (empty when ready)."""
        if provider == "azure":
            needed = {"OPENAI_API_BASE or AZURE_OPENAI_ENDPOINT": self.azure_endpoint,
                      "OPENAI_API_DEPLOY or AZURE_OPENAI_DEPLOYMENT": self.azure_deployment}
            if not is_azure_v1(self.azure_endpoint):
                needed["OPENAI_API_VERSION"] = self.azure_api_version
            if not _entra_available():
                needed[f"{self.azure_key_variable} (or install azure-identity for Entra ID)"] = self.azure_api_key
        elif provider == "compatible":
            needed = {"COMPATIBLE_BASE_URL": self.compatible_base_url, "COMPATIBLE_MODEL": self.compatible_model}
        elif provider == "openai":
            needed = {"OPENAI_API_KEY": self.openai_api_key}
        else:
            needed = {}
        return [name for name, value in needed.items() if not value]

    def touched(self, provider: str) -> bool:
        """Whether any of the provider's own settings is present."""
        return {
            "azure": bool(self.azure_endpoint or self.azure_deployment),
            "compatible": bool(self.compatible_base_url or self.compatible_model),
            "openai": bool(self.openai_api_key),
        }.get(provider, True)

    def available(self) -> list[str]:
        """Providers ready to use, in auto-selection order; the embedded model is always last."""
        return [p for p in PROVIDERS if not self.missing(p)]

    def resolve(self) -> str:
        """The provider `backend` names; for auto, the first ready one. Refused when its key cannot be sent."""
        provider = self.available()[0] if self.backend == "auto" else self.backend
        missing = self.missing(provider)
        if missing:
            raise ConfigurationError(f"The {provider} backend needs {', '.join(missing)}.")
        self._check_key(provider)
        return provider

    def _check_key(self, provider: str) -> None:
        """Refuse a key that cannot go into an HTTP header, naming its variable and never the key."""
        variable, key = {"azure": (self.azure_key_variable, self.azure_api_key),
                         "openai": ("OPENAI_API_KEY", self.openai_api_key),
                         "compatible": ("COMPATIBLE_API_KEY", self.compatible_api_key)}.get(provider, ("", None))
        problem = key and _key_problem(key)
        if problem:
            raise ConfigurationError(f"{variable} {problem}")

    def notes(self) -> list[str]:
        """Warnings about half-configured providers that auto-selection skipped."""
        return [
            f"{p} is partly configured but needs {', '.join(self.missing(p))}; it was skipped."
            for p in PROVIDERS[:-1]
            if self.touched(p) and self.missing(p)
        ]


def is_azure_v1(endpoint: str | None) -> bool:
    """Azure's v1 route (…/openai/v1/) takes a plain base URL and no api-version."""
    return bool(endpoint) and urlsplit(endpoint).path.rstrip("/").endswith("/openai/v1")


def check_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        shown = value if "@" not in value else "a value with user:password@ in it"
        raise ConfigurationError(f"{name} must be an http(s) URL such as https://example.com/, got {shown!r}.")
    return value


def _key_problem(key: Any) -> str | None:
    """Why key cannot go into an HTTP header as it is, in words that never repeat it (None when it can)."""
    if not isinstance(key, str):
        return f"must be text, got {type(key).__name__}."
    if key != key.strip():
        end, blank = ("starts", key[0]) if key[0].isspace() else ("ends", key[-1])
        return f"{end} with {_blank_name(blank)}; remove it (a key has none at either end)."
    odd = _NOT_HEADER_TEXT.search(key)
    if odd is None:
        return None
    if odd.group() in "\r\n":
        return f"contains a line break at position {odd.start()}; a key is a single line."
    if odd.group().isascii():
        return f"contains a control character at position {odd.start()}; copy the key again."
    return (f"contains a character that is not ASCII at position {odd.start()}; API keys are plain ASCII, "
            "so copy the key again (a curly quote or a non-breaking space slips in easily).")


def _blank_name(char: str) -> str:
    return {"\n": "a line break", "\r": "a line break", " ": "a space", "\t": "a tab"}.get(char, "a blank character")


def _entra_available() -> bool:
    return importlib.util.find_spec("azure") is not None and importlib.util.find_spec("azure.identity") is not None


def _first(source: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = source.get(name)
        if value not in (None, ""):
            return value
    return None


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


def load_settings(
    secrets: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | os.PathLike | None = ".env",
    **overrides: Any,
) -> Settings:
    """Merge the sources (see read_sources), read the variables, then apply explicit overrides."""
    source = read_sources(secrets, environ, dotenv_path)

    azure_endpoint = _first(source, "AZURE_OPENAI_ENDPOINT", "OPENAI_API_BASE")
    azure_key = _first(source, "AZURE_OPENAI_API_KEY")
    key_variable = "AZURE_OPENAI_API_KEY"
    openai_key = _first(source, "OPENAI_API_KEY")
    if azure_endpoint and not azure_key and openai_key:
        # The classic demo keeps the Azure key in OPENAI_API_KEY: it then belongs to Azure alone.
        azure_key, openai_key, key_variable = openai_key, None, "OPENAI_API_KEY"
    try:
        settings = Settings(
            backend=str(_first(source, "REPRO_BACKEND") or "auto").lower(),
            azure_endpoint=azure_endpoint,
            azure_api_key=azure_key,
            azure_api_version=_first(source, "OPENAI_API_VERSION", "AZURE_OPENAI_API_VERSION"),
            azure_deployment=_first(source, "AZURE_OPENAI_DEPLOYMENT", "OPENAI_API_DEPLOY"),
            azure_key_variable=key_variable,
            openai_api_key=openai_key,
            openai_base_url=_first(source, "OPENAI_BASE_URL"),
            openai_model=_first(source, "OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
            compatible_base_url=_first(source, "COMPATIBLE_BASE_URL"),
            compatible_api_key=_first(source, "COMPATIBLE_API_KEY"),
            compatible_model=_first(source, "COMPATIBLE_MODEL"),
            local_mode=str(_first(source, "REPRO_LOCAL_MODE") or "deterministic").lower(),
            local_model_path=_first(source, "REPRO_LOCAL_MODEL"),
            timeout_s=float(_first(source, "REPRO_TIMEOUT") or 60),
            max_retries=int(_first(source, "REPRO_MAX_RETRIES") or 2),
        )
    except ValueError as exc:
        raise ConfigurationError(f"REPRO_TIMEOUT and REPRO_MAX_RETRIES must be numbers: {exc}.") from None
    return settings.with_overrides(**overrides)
