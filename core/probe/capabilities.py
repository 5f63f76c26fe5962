"""What an endpoint rejects, as the probe found it, and how a request is changed so that it never sends that: a seed
or logprobs is dropped; a temperature or top_p is sent as 1, the value the probe's baseline showed it accepts."""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.backends import Backend
from core.models import BackendInfo, Completion, RunRequest
from core.probe.findings import REJECTED, ParameterFinding, ProbeReport

DEFAULTS = {"temperature": 1.0, "top_p": 1.0}  # what a reasoning model accepts: its default


@dataclass(frozen=True)
class Capabilities:
    """The parameters an endpoint rejected, each with the server's reason; `baseline_ok` is whether it accepted
    temperature 1 and top_p 1 (so that sending those instead is safe)."""

    endpoint: BackendInfo
    rejected: tuple[ParameterFinding, ...] = ()
    baseline_ok: bool = True

    @classmethod
    def from_findings(cls, endpoint: BackendInfo, findings: tuple[ParameterFinding, ...],
                      baseline_ok: bool) -> Capabilities:
        return cls(endpoint, tuple(f for f in findings if f.status == REJECTED), baseline_ok)

    @classmethod
    def of(cls, report: ProbeReport) -> Capabilities:
        """What a probe's report card says the endpoint rejects."""
        return cls.from_findings(report.backend, report.parameters, report.baseline_error is None)

    def reason(self, parameter: str) -> str | None:
        """Why a widget for `parameter` is disabled: None when the endpoint did not reject it."""
        found = next((f for f in self.rejected if f.parameter == parameter), None)
        return found and f"This endpoint rejects {parameter} (found by the probe): {found.evidence}"


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
    if not changes:
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
        completion = await self.backend.complete(sent)
        return completion.noted(note) if note else completion
