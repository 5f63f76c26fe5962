"""The run parameters' widgets, read once into a typed Params: the seed is parsed here, nowhere else in the app.

Each page draws only the widgets it uses (`all_parameters`, `seed_demo_parameters`, `no_parameters`); what it does
not draw keeps its default; a parameter the endpoint's probe found rejected is a disabled widget that says why.
`made_by` and `inputs_key` say which settings produced a set of results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import streamlit as st

from core import (DEMO_MAX_TOKENS, BackendInfo, BatchPlan, Capabilities, ConfigurationError, InvalidRequest, Limits,
                  Provider, RunRequest, parse_seed, provider, runs_needed, upper_bound)
from core.probe.capabilities import DEFAULTS
from ui.html import md

DEMO_SEED = 42
DEFAULT_TEMPERATURE = 0.1
DEFAULT_RUNS = 5
DEFAULT_MAX_TOKENS = 128
ALL = "all"  # the in-flight slider's first stop: every request of the batch at once, within the process cap


@dataclass(frozen=True)
class Params:
    """What the Parameters widgets say. A seed box that does not parse is kept as `seed_error`, raised only by a
    request that uses the seed (a sweep sets its own seeds, so it still runs)."""

    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None
    runs: int
    concurrency: int
    seed_error: str | None = None

    def unseeded(self, prompt: str, system: str, *, logprobs: bool = False) -> RunRequest:
        """A validated request without a seed, whatever the seed box says; raises InvalidRequest naming a bad field."""
        return RunRequest(prompt=prompt, system=system, temperature=self.temperature, top_p=self.top_p,
                          max_tokens=self.max_tokens, logprobs=logprobs)

    def request(self, prompt: str, system: str, *, logprobs: bool = False) -> RunRequest:
        """A validated request with the chosen seed; raises InvalidRequest naming the bad field."""
        if self.seed_error:
            raise InvalidRequest(self.seed_error)
        return replace(self.unseeded(prompt, system, logprobs=logprobs), seed=self.seed)

    def plan(self) -> BatchPlan:
        return BatchPlan(self.runs, self.concurrency)


Controls = Callable[[Limits, str, Capabilities | None], Params]  # (limits, provider, what it rejects) -> parameters
Seed = Callable[[Capabilities | None], tuple[int | None, str | None]]
LOGPROBS_HELP = ("Shows what each run could have chosen where two runs part. The embedded model is much slower "
                 "with them.")


def default_max_tokens(limits: Limits, backend: str) -> int:
    return min(DEMO_MAX_TOKENS if backend == "local" else DEFAULT_MAX_TOKENS, limits.max_tokens)


def no_parameters(limits: Limits, backend: str, capabilities: Capabilities | None = None) -> Params:
    """No widget: the defaults, for pages that set what they vary themselves (Sweep, History)."""
    return Params(DEFAULT_TEMPERATURE, 1.0, default_max_tokens(limits, backend), DEMO_SEED,
                  min(DEFAULT_RUNS, limits.max_runs), 1)


def rejection(capabilities: Capabilities | None, parameter: str) -> str | None:
    """Why the endpoint's latest probe says it rejects `parameter`, made inert for markdown (a disabled widget's help
    and caption); None if it does not."""
    reason = capabilities.reason(parameter) if capabilities else None
    return reason and md(reason)


def _seed(capabilities: Capabilities | None) -> tuple[int | None, str | None]:
    """The seed box: no seed when the toggle is off or the endpoint rejects seeds; else the parsed seed, or why it
    does not parse."""
    rejected = rejection(capabilities, "seed")
    use_seed = st.toggle("Fixed seed", value=True, key="use_seed", disabled=bool(rejected), help=rejected)
    text = st.text_input("Seed", str(DEMO_SEED), key="seed", disabled=bool(rejected) or not use_seed,
                         help=rejected or "Any whole number in the signed 64-bit range.")
    if rejected:
        st.caption(rejected)
    if rejected or not use_seed:
        return None, None
    try:
        return parse_seed(text), None
    except InvalidRequest as exc:
        return None, str(exc)


def _sampling_slider(label: str, parameter: str, bounds: tuple[float, float], default: float,
                     capabilities: Capabilities | None) -> float:
    """A temperature or top_p slider; disabled at the value the endpoint accepts when its probe found it rejected."""
    rejected = rejection(capabilities, parameter)
    if not rejected:
        return st.slider(label, *bounds, default, step=0.05, key=parameter)
    st.slider(label, *bounds, DEFAULTS[parameter], step=0.05, key=parameter, disabled=True, help=rejected)
    st.caption(rejected)
    return DEFAULTS[parameter]


def _sampling(limits: Limits, backend: str, capabilities: Capabilities | None, seed: Seed) -> Params:
    st.header("Parameters")
    temperature = _sampling_slider("Temperature", "temperature", (0.0, 2.0), DEFAULT_TEMPERATURE, capabilities)
    chosen_seed, seed_error = seed(capabilities)
    runs = st.slider("Runs (identical requests)", 2, max(2, limits.max_runs), min(DEFAULT_RUNS, limits.max_runs),
                     key="runs")
    st.caption(what_runs_prove(runs))
    max_tokens = st.number_input("Max tokens", 1, limits.max_tokens, default_max_tokens(limits, backend), step=16,
                                 key="max_tokens")
    top_p = _sampling_slider("top_p", "top_p", (0.05, 1.0), 1.0, capabilities)
    return Params(temperature, top_p, int(max_tokens), chosen_seed, runs, 1, seed_error)


def all_parameters(limits: Limits, backend: str, capabilities: Capabilities | None = None) -> Params:
    """Every run parameter, in the sidebar (Experiment)."""
    return _sampling(limits, backend, capabilities, _seed)


def seed_demo_parameters(limits: Limits, backend: str, capabilities: Capabilities | None = None) -> Params:
    """Every run parameter but the seed, which the page fixes at DEMO_SEED for its seeded scenario."""
    return _sampling(limits, backend, capabilities, lambda _: (DEMO_SEED, None))


def rejections(capabilities: Capabilities | None, *parameters: str) -> None:
    """A caption for each of `parameters` the endpoint rejects (for a page that sets them itself, as Sweep does)."""
    for rejected in filter(None, (rejection(capabilities, parameter) for parameter in parameters)):
        st.caption(rejected)


def logprobs_toggle(capabilities: Capabilities | None) -> bool:
    """The log-probabilities toggle (Experiment); off and disabled when the endpoint's probe found them rejected."""
    rejected = rejection(capabilities, "logprobs")
    chosen = st.toggle("Log-probabilities (top 5)", key="logprobs", disabled=bool(rejected),
                       help=rejected or LOGPROBS_HELP)
    if rejected:
        st.caption(rejected)
    return chosen and not rejected


def what_runs_prove(runs: int) -> str:
    """What `runs` identical answers would show, and how many runs a 1 % claim needs (the runs-needed planner)."""
    return (f"If all {runs} agree: fewer than {upper_bound(runs).high * 100:.1f} % of requests diverge (95 %). "
            f"To show fewer than 1 %: {runs_needed(0.01)} runs.")


def requests_in_flight(limits: Limits, runs: int | None) -> int:
    """The Advanced slider: by default all of a batch's requests at once (bounded by REPRO_GLOBAL_CONCURRENCY)."""
    most = max(1, min(limits.global_concurrency, limits.max_runs))
    everything = f"all ({min(runs, most)})" if runs else "all"
    chosen = st.select_slider("Requests in flight at once", [ALL, *range(1, most + 1)], value=ALL, key="concurrency",
                              format_func=lambda value: everything if value == ALL else str(value),
                              help="Identical requests sent together share the server's batch conditions. "
                                   f"This instance allows {most} at once (REPRO_GLOBAL_CONCURRENCY).")
    return most if chosen == ALL else chosen


def registered(info: BackendInfo) -> Provider | None:
    """The provider that answered, or None: an imported experiment may name one not registered here."""
    try:
        return provider(info.provider)
    except ConfigurationError:
        return None


def backend_title(info: BackendInfo) -> str:
    """The provider's title ("Azure OpenAI"), or its stored name when it is not registered here."""
    family = registered(info)
    return family.title if family else info.provider


def made_by(params: Params, backend_info: BackendInfo) -> str:
    """One line naming what produced a set of results: backend, model, T, top_p, seed, N, mode."""
    parts = [backend_title(backend_info), backend_info.model, f"T {params.temperature:g}", f"top_p {params.top_p:g}",
             f"seed {params.seed}" if params.seed is not None else "no seed", f"N {params.runs}"]
    if backend_info.mode:
        parts.append(f"{backend_info.mode} mode")
    return " · ".join(parts)


def inputs_key(params: Params, backend_info: BackendInfo | None, *others: object) -> str:
    """Everything a set of results depends on, as one value: when it changes, results made before are stale."""
    return repr((params, backend_info, others))
