"""One seam for every provider: a Backend turns a RunRequest into a Completion; the runner never knows which it holds.

Built in, in auto-selection order: azure, compatible, openai (all through openai_chat.py) and local, the embedded
model (local.py, batched.py). Adding a provider is one module that calls `register(Provider(...))` at import (see
registry.py). A module outside core may register more: name it in REPRO_PROVIDERS (comma-separated module paths,
e.g. `REPRO_PROVIDERS=mypackage.bedrock`), read from the process environment only, because the choices must be
known before the settings are read (the command line's --backend, the sidebar).
"""

import os

from core.backends.registry import (
    Backend,
    BackendSettings,
    Provider,
    ProviderConfig,
    import_plugins,
    make_backend,
    provider,
    providers,
    register,
)
from core.backends import azure, compatible, openai, local  # noqa: E402,F401,I001 - registration order is auto's

import_plugins(os.environ.get("REPRO_PROVIDERS", ""))

__all__ = ["Backend", "BackendSettings", "Provider", "ProviderConfig", "make_backend", "provider", "providers",
           "register"]
