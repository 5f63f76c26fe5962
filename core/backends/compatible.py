"""Any server that speaks OpenAI's chat-completions route (vLLM, Ollama, llama.cpp's server, a proxy):
COMPATIBLE_BASE_URL, COMPATIBLE_MODEL and, when the server wants one, COMPATIBLE_API_KEY."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import openai

from core.backends.openai_chat import ChatConfig, OpenAIChatBackend, check_url, host
from core.backends.registry import BackendSettings, Provider, register, setting, unset
from core.models import BackendInfo

PLACEHOLDER_KEY = "EMPTY"  # what vLLM's docs send when a server wants no key; never a real key from elsewhere


@dataclass(frozen=True)
class CompatibleConfig(ChatConfig):
    base_url: str | None = None
    api_key: Any = field(default=None, repr=False)
    model: str | None = None
    key_variable: ClassVar[str] = "COMPATIBLE_API_KEY"

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> CompatibleConfig:
        return cls(base_url=setting(source, "COMPATIBLE_BASE_URL"), api_key=setting(source, "COMPATIBLE_API_KEY"),
                   model=setting(source, "COMPATIBLE_MODEL"))

    def missing(self) -> list[str]:
        return unset({"COMPATIBLE_BASE_URL": self.base_url, "COMPATIBLE_MODEL": self.model})

    def touched(self) -> bool:
        return bool(self.base_url or self.model)

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("compatible", self.model, host(self.base_url))


def compatible_backend(config: CompatibleConfig, settings: BackendSettings) -> OpenAIChatBackend:
    base_url = check_url("COMPATIBLE_BASE_URL", config.base_url)

    def make_client(**kw: Any) -> openai.AsyncOpenAI:
        # An explicit key always: the SDK would otherwise read OPENAI_API_KEY and send it to this server.
        return openai.AsyncOpenAI(api_key=config.api_key or PLACEHOLDER_KEY, base_url=base_url, **kw)

    hints = {"endpoint": "COMPATIBLE_BASE_URL", "key": config.key_variable, "model": "COMPATIBLE_MODEL"}
    return OpenAIChatBackend(config.info, make_client, model=config.model, settings=settings, hints=hints)


register(Provider("compatible", "OpenAI-compatible server", paid=False, config=CompatibleConfig,
                  build=compatible_backend))
