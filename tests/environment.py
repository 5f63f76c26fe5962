"""The environment every test gives the app, the CLI and the embedded engine: nothing from the developer's machine
that picks a provider, a history or a database, and the engine on one thread. Three pytest workers, the browsers and
the app servers share two cores, and llama.cpp's threads spin while they wait for each other: the cache-mode test
took 6 s alone and 113 s beside the rest with two threads (one thread: 5 s alone, 7 s beside two busy cores)."""

from __future__ import annotations

import os

from core.backends.local import LocalBackend

PROVIDER_VARIABLES = ("OPENAI_", "AZURE_OPENAI_", "COMPATIBLE_", "REPRO_")
ENGINE_THREADS = 1
ENGINE = {"REPRO_LOCAL_THREADS": str(ENGINE_THREADS)}


def clean_environment(*also: str) -> dict[str, str]:
    """This process's environment without provider variables (nor those starting with `also`), plus ENGINE."""
    return {name: value for name, value in os.environ.items() if not name.startswith(PROVIDER_VARIABLES + also)} | ENGINE


def local_engine(**options) -> LocalBackend:
    """The embedded engine, built as the product builds it, on ENGINE_THREADS."""
    return LocalBackend(n_threads=ENGINE_THREADS, **options)
