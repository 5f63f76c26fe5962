"""The run parameters' widgets, read once into a typed Params: the seed is parsed here, nowhere else in the app."""

from __future__ import annotations

from dataclasses import dataclass, replace

import streamlit as st

from core import BatchPlan, InvalidRequest, Limits, RunRequest, parse_seed


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


def _seed() -> tuple[int | None, str | None]:
    """The seed box: no seed when the toggle is off; else the parsed seed, or why it does not parse."""
    use_seed = st.toggle("Fixed seed", value=True, key="use_seed")
    text = st.text_input("Seed", "42", key="seed", disabled=not use_seed,
                         help="Any whole number in the signed 64-bit range.")
    if not use_seed:
        return None, None
    try:
        return parse_seed(text), None
    except InvalidRequest as exc:
        return None, str(exc)


def parameters(limits: Limits, concurrency: int) -> Params:
    """The Parameters section of the sidebar, bounded by the limits; `concurrency` comes from the backend's widgets."""
    st.header("Parameters")
    temperature = st.slider("Temperature", 0.0, 2.0, 0.1, step=0.05, key="temperature")
    seed, seed_error = _seed()
    runs = st.slider("Runs (identical requests)", 2, max(2, limits.max_runs), min(5, limits.max_runs), key="runs")
    max_tokens = st.number_input("Max tokens", 1, limits.max_tokens, min(128, limits.max_tokens), step=16,
                                 key="max_tokens")
    top_p = st.slider("top_p", 0.05, 1.0, 1.0, step=0.05, key="top_p")
    return Params(temperature, top_p, int(max_tokens), seed, runs, concurrency, seed_error)
