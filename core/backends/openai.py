"""OpenAI's own API (or any server at OPENAI_BASE_URL that takes an OpenAI key): OPENAI_API_KEY, OPENAI_MODEL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import openai

from core.backends.openai_chat import ChatConfig, OpenAIChatBackend, check_url, host
from core.backends.registry import BackendSettings, Provider, register, setting, unset
from core.models import BackendInfo

DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class OpenAIConfig(ChatConfig):
    api_key: Any = field(default=None, repr=False)
    base_url: str | None = None
    model: str = DEFAULT_MODEL
    key_variable: ClassVar[str] = "OPENAI_API_KEY"

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> OpenAIConfig:
        return cls(api_key=setting(source, "OPENAI_API_KEY"), base_url=setting(source, "OPENAI_BASE_URL"),
                   model=setting(source, "OPENAI_MODEL") or DEFAULT_MODEL)

    def missing(self) -> list[str]:
        return unset({"OPENAI_API_KEY": self.api_key})

    def touched(self) -> bool:
        return bool(self.api_key)

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("openai", self.model, host(self.base_url) or "api.openai.com")


def openai_backend(config: OpenAIConfig, settings: BackendSettings) -> OpenAIChatBackend:
    base_url = check_url("OPENAI_BASE_URL", config.base_url) if config.base_url else None

    def make_client(**kw: Any) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=config.api_key, base_url=base_url, **kw)

    hints = {"endpoint": "OPENAI_BASE_URL", "key": config.key_variable, "model": "OPENAI_MODEL"}
    return OpenAIChatBackend(config.info, make_client, model=config.model, settings=settings, hints=hints)


register(Provider("openai", "OpenAI", paid=True, config=OpenAIConfig, build=openai_backend))
