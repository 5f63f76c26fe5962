"""What an endpoint rejects, as the probe found it, and how a request is changed so that it never sends that: a seed
or logprobs is dropped; a temperature or top_p is sent as 1, the value the probe's baseline showed it accepts; the
token limit goes as max_completion_tokens where max_tokens is rejected and that is accepted."""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.backends import Backend
from core.backends.openai_chat import TOKEN_LIMITS, sending_token_limit_as
from core.models import BackendInfo, Completion, RunRequest
from core.probe.findings import ACCEPTED, REJECTED, ParameterFinding, ProbeReport

DEFAULTS = {"temperature": 1.0, "top_p": 1.0}  # what a reasoning model accepts: its default


@dataclass(frozen=True)
class Capabilities:
    """The parameters an endpoint rejected, each with the server's reason; `baseline_ok` is whether it accepted
    temperature 1 and top_p 1 (so that sending those instead is safe); `token_limit` the name max_tokens is sent
    under (one of TOKEN_LIMITS)."""

    endpoint: BackendInfo
    rejected: tuple[ParameterFinding, ...] = ()
    baseline_ok: bool = True
    token_limit: str = TOKEN_LIMITS[0]

    @classmethod
    def from_findings(cls, endpoint: BackendInfo, findings: tuple[ParameterFinding, ...],
                      baseline_ok: bool) -> Capabilities:
        return cls(endpoint, tuple(f for f in findings if f.status == REJECTED), baseline_ok, token_limit(findings))

    @classmethod
    def of(cls, report: ProbeReport) -> Capabilities:
        """What a probe's report card says the endpoint rejects."""
        return cls.from_findings(report.backend, report.parameters, report.baseline_error is None)

    def reason(self, parameter: str) -> str | None:
        """Why a widget for `parameter` is disabled: None when the endpoint did not reject it."""
        found = next((f for f in self.rejected if f.parameter == parameter), None)
        return found and f"This endpoint rejects {parameter} (found by the probe): {found.evidence}"


def token_limit(findings: tuple[ParameterFinding, ...]) -> str:
    """max_completion_tokens where max_tokens was rejected and it was accepted (honoured); else max_tokens, what every
    backend sends (a probe saved before max_completion_tokens was tried has it untested)."""
    status = {f.parameter: f.status for f in findings}
    plain, renamed = TOKEN_LIMITS
    # Only where it was honoured: a limit the endpoint ignores would leave a paid endpoint's answers uncapped.
    return renamed if status.get(plain) == REJECTED and status.get(renamed) == ACCEPTED else plain


def strip_rejected(request: RunRequest, capabilities: Capabilities) -> tuple[RunRequest, str | None]:
    """The request without what the endpoint rejects, and the note that says what was left out (None: nothing)."""
    changes, left_out = {}, []
    for parameter in (f.parameter for f in capabilities.rejected):
        if parameter == "seed" and request.seed is not None:
            changes["seed"] = None
            left_out.append(f"seed {request.seed} not sent")
        elif parameter == "logprobs" and request.logprobs:
            changes["logprobs"] = False
            left_out.append("logprobs not asked for")
        elif parameter in DEFAULTS and capabilities.baseline_ok and getattr(request, parameter) != DEFAULTS[parameter]:
            changes[parameter] = DEFAULTS[parameter]
            left_out.append(f"{parameter} {getattr(request, parameter):g} sent as {DEFAULTS[parameter]:g}")
    if capabilities.token_limit != TOKEN_LIMITS[0]:  # the request keeps max_tokens; the backend renames it
        left_out.append(f"max_tokens {request.max_tokens} sent as {capabilities.token_limit}")
    if not left_out:
        return request, None
    return replace(request, **changes), f"The endpoint rejects these (see its probe): {'; '.join(left_out)}."


class AdaptedBackend:
    """A backend that never sends what `capabilities` says its endpoint rejects; a run so changed carries the note."""

    def __init__(self, backend: Backend, capabilities: Capabilities):
        self.backend = backend
        self.capabilities = capabilities
        self.info = backend.info

    @property
    def max_concurrency(self) -> int | None:
        return self.backend.max_concurrency

    async def complete(self, request: RunRequest) -> Completion:
        sent, note = strip_rejected(request, self.capabilities)
        with sending_token_limit_as(self.capabilities.token_limit):
            completion = await self.backend.complete(sent)
        return completion.noted(note) if note else completion
