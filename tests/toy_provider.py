"""A toy provider, registered at import as any provider module is: a backend that answers with the prompt.

tests/test_registry.py imports it for one test at a time, and names it to the command line as a plugin
(REPRO_PROVIDERS=tests.toy_provider). It is ready once TOY_MODEL is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.backends import Provider, register
from core.backends.registry import BackendSettings, setting, unset
from core.models import BackendInfo, Completion, RunRequest


@dataclass(frozen=True)
class ToyConfig:
    model: str | None = None

    @classmethod
    def from_source(cls, source: Mapping[str, Any]) -> ToyConfig:
        return cls(model=setting(source, "TOY_MODEL"))

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()

    def missing(self) -> list[str]:
        return unset({"TOY_MODEL": self.model})

    def touched(self) -> bool:
        return bool(self.model)

    def check(self) -> None:
        """A toy has nothing to refuse."""

    def describe(self) -> list[tuple[str, str]]:
        return [("Model", self.model)]


class EchoBackend:
    max_concurrency = None

    def __init__(self, model: str):
        self.info = BackendInfo("toy", model)

    async def complete(self, request: RunRequest) -> Completion:
        return Completion(text=request.prompt, finish_reason="stop", model=self.info.model)


def echo_backend(config: ToyConfig, settings: BackendSettings) -> EchoBackend:
    return EchoBackend(config.model)


PROVIDER = Provider("toy", "Toy echo", paid=False, config=ToyConfig, build=echo_backend)
register(PROVIDER)
