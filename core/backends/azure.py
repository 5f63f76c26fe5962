"""Azure OpenAI: a deployment behind an Azure endpoint, with an API key or Entra ID (azure-identity).

Variable names are the classic Azure demo's (OPENAI_API_BASE, OPENAI_API_VERSION, OPENAI_API_KEY, OPENAI_API_DEPLOY)
and the SDK's own (AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_API_KEY, AZURE_OPENAI_DEPLOYMENT, AZURE_OPENAI_API_VERSION).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import openai

from core.backends.openai_chat import ChatConfig, OpenAIChatBackend, check_url, host
from core.backends.registry import BackendSettings, Provider, register, setting, unset
from core.models import BackendInfo

ENDPOINT_VARIABLES = ("AZURE_OPENAI_ENDPOINT", "OPENAI_API_BASE")


@dataclass(frozen=True)
class AzureConfig(ChatConfig):
    endpoint: str | None = None
    api_key: Any = field(default=None, repr=False)
    api_version: str | None = None
    deployment: str | None = None
    key_variable: str = "AZURE_OPENAI_API_KEY"

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> AzureConfig:
        key, key_variable = setting(source, "AZURE_OPENAI_API_KEY"), "AZURE_OPENAI_API_KEY"
        if _takes_openai_key(source):
            key, key_variable = setting(source, "OPENAI_API_KEY"), "OPENAI_API_KEY"
        return cls(endpoint=setting(source, *ENDPOINT_VARIABLES), api_key=key, key_variable=key_variable,
                   api_version=setting(source, "OPENAI_API_VERSION", "AZURE_OPENAI_API_VERSION"),
                   deployment=setting(source, "AZURE_OPENAI_DEPLOYMENT", "OPENAI_API_DEPLOY"))

    def missing(self) -> list[str]:
        needed = {"OPENAI_API_BASE or AZURE_OPENAI_ENDPOINT": self.endpoint,
                  "OPENAI_API_DEPLOY or AZURE_OPENAI_DEPLOYMENT": self.deployment}
        if not is_azure_v1(self.endpoint):
            needed["OPENAI_API_VERSION"] = self.api_version
        if not _entra_available():
            needed[f"{self.key_variable} (or install azure-identity for Entra ID)"] = self.api_key
        return unset(needed)

    def touched(self) -> bool:
        return bool(self.endpoint or self.deployment)

    @property
    def info(self) -> BackendInfo:
        v1 = is_azure_v1(self.endpoint)
        return BackendInfo("azure", self.deployment, host(self.endpoint), None if v1 else self.api_version)


def _takes_openai_key(source: Mapping[str, Any]) -> bool:
    """The classic demo keeps the Azure key in OPENAI_API_KEY: with an Azure endpoint and no AZURE_OPENAI_API_KEY,
    that key belongs to Azure alone and is never sent to api.openai.com."""
    return bool(setting(source, *ENDPOINT_VARIABLES) and not setting(source, "AZURE_OPENAI_API_KEY")
                and setting(source, "OPENAI_API_KEY"))


def _claims(source: Mapping[str, Any]) -> tuple[str, ...]:
    return ("OPENAI_API_KEY",) if _takes_openai_key(source) else ()


def is_azure_v1(endpoint: str | None) -> bool:
    """Azure's v1 route (…/openai/v1/) takes a plain base URL and no api-version."""
    return bool(endpoint) and urlsplit(endpoint).path.rstrip("/").endswith("/openai/v1")


def _entra_available() -> bool:
    return importlib.util.find_spec("azure") is not None and importlib.util.find_spec("azure.identity") is not None


def azure_backend(config: AzureConfig, settings: BackendSettings) -> OpenAIChatBackend:
    endpoint = check_url("OPENAI_API_BASE / AZURE_OPENAI_ENDPOINT", config.endpoint)
    credentials: dict[str, Any] = {"api_key": config.api_key}
    if not config.api_key:
        # The async client awaits its token provider: the aio flavour gives one it can await.
        from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

        credentials = {"azure_ad_token_provider": get_bearer_token_provider(
            DefaultAzureCredential(), "https://cognitiveservices.azure.com/.default")}
    if is_azure_v1(endpoint):
        def make_client(**kw: Any) -> openai.AsyncOpenAI:
            key = credentials.get("api_key") or credentials["azure_ad_token_provider"]
            return openai.AsyncOpenAI(base_url=endpoint, api_key=key, **kw)
    else:
        def make_client(**kw: Any) -> openai.AsyncOpenAI:
            return openai.AsyncAzureOpenAI(azure_endpoint=endpoint, azure_deployment=config.deployment,
                                           api_version=config.api_version, **credentials, **kw)

    hints = {"endpoint": "OPENAI_API_BASE", "key": config.key_variable, "model": "OPENAI_API_DEPLOY"}
    return OpenAIChatBackend(config.info, make_client, model=config.deployment, settings=settings, hints=hints)


register(Provider("azure", "Azure OpenAI", paid=True, config=AzureConfig, build=azure_backend, claims=_claims))
