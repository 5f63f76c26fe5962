"""What a probe will send: the plan (runs of R, the load ladder, fresh prompts), the requests of each part, what it
costs, and the plan cut down to a concurrency cap and a quota."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from core.backends.openai_chat import TOKEN_LIMITS
from core.errors import InvalidRequest
from core.models import MAX_RUNS, MAX_TOKENS_LIMIT, RunRequest, is_integer
from core.probe.findings import SHORT_TOKENS, SkippedRung

LADDER = (0, 4, 16, 64)
LOCAL_LADDER = (0, 2, 4, 8)  # the embedded engine's: its whole rung is one batch on a couple of cores, run twice
MAX_BACKGROUND = 1000
# The embedded engine's ladder runs once per variant, R in its own cells then sharing prompt cells (run.VARIANTS).
BATCH_VARIANTS = ("isolated cells", "shared cells")
SEED_A, SEED_B = 1234, 98765
LOAD_PROMPT = "In one sentence, what makes a good cup of tea?"
FRESH_PROMPT = "Write one sentence about the sea."
BACKGROUND_PROMPTS = (
    "List three uses of copper.",
    "Explain in two sentences why the sky is blue.",
    "Write a four-line poem about autumn leaves.",
    "Summarise the plot of Hamlet in three sentences.",
    "Give five tips for learning a new language, one per line.",
    "Describe a busy train station at rush hour in a short paragraph.",
)
# (parameter, how its request differs from the baseline: temperature 1, top_p 1, no seed, no logprobs)
PARAMETER_CHANGES = (
    ("temperature", {"temperature": 0.5}),
    ("top_p", {"top_p": 0.5}),
    ("seed", {"seed": SEED_A}),
    ("logprobs", {"logprobs": True, "top_logprobs": 2}),
)
SEED_RUNS = (("seed A", SEED_A), ("seed A", SEED_A), ("seed B", SEED_B), ("no seed", None), ("no seed", None))


def parse_ladder(text: str) -> tuple[int, ...]:
    """"0,4,16" as the ladder of background loads; 0 (no load) is added when missing."""
    try:
        loads = {int(part) for part in text.split(",") if part.strip()}
    except ValueError:
        raise InvalidRequest(f"ladder must be comma-separated whole numbers such as 0,4,16,64, "
                             f"got {text!r:.40}.") from None
    return _ladder(loads)


def _ladder(loads: set[int] | tuple[int, ...]) -> tuple[int, ...]:
    if not all(is_integer(k) and 0 <= k <= MAX_BACKGROUND for k in loads):
        raise InvalidRequest(f"ladder: each load must be a whole number from 0 to {MAX_BACKGROUND}, got "
                             f"{sorted(loads)}.")
    return tuple(sorted({0, *loads}))


@dataclass(frozen=True)
class ProbePlan:
    """`runs` copies of R per rung of `ladder` (background requests in flight), `fresh_prompts` each sent cold and
    then `warm_repeats` times warm, answers of `max_tokens` at most. `nonce` makes the fresh prompts new to the
    server (random unless given, so that a test can pick them). `in_batch`: the embedded engine, whose ladder runs
    inside one batch once per variant of BATCH_VARIANTS, after one run of R alone to compare each rung with."""

    runs: int = 8
    ladder: tuple[int, ...] = LADDER
    max_tokens: int = 16
    fresh_prompts: int = 4
    warm_repeats: int = 2
    nonce: int = field(default_factory=lambda: random.randrange(10**9))
    in_batch: bool = False

    def __post_init__(self) -> None:
        if not is_integer(self.runs) or not 2 <= self.runs <= MAX_RUNS:
            raise InvalidRequest(f"runs must be a whole number from 2 to {MAX_RUNS}, got {self.runs!r}.")
        object.__setattr__(self, "ladder", _ladder(tuple(self.ladder)))
        for name, low in (("fresh_prompts", 1), ("warm_repeats", 2)):
            if not is_integer(getattr(self, name)) or not low <= getattr(self, name) <= 20:
                raise InvalidRequest(f"{name} must be a whole number from {low} to 20, got {getattr(self, name)!r}.")
        self.baseline()  # max_tokens is checked where every request is: by RunRequest

    def baseline(self) -> RunRequest:
        """The parameters' baseline: values even reasoning models accept (temperature 1, top_p 1), nothing else."""
        return RunRequest(prompt="Reply with one short sentence.", temperature=1.0, top_p=1.0,
                          max_tokens=self.max_tokens)

    def parameter_requests(self) -> list[tuple[str, RunRequest]]:
        """The baseline, then one request per parameter that changes only that parameter."""
        base = self.baseline()
        return [("baseline", base), *((name, replace(base, **change)) for name, change in PARAMETER_CHANGES)]

    def token_limit_request(self) -> RunRequest:
        """The baseline asking for SHORT_TOKENS at most: sent once per name in TOKEN_LIMITS, to see which is obeyed."""
        return replace(self.baseline(), max_tokens=SHORT_TOKENS)

    def seed_requests(self) -> list[tuple[str, RunRequest]]:
        base = RunRequest(prompt=FRESH_PROMPT, temperature=1.0, max_tokens=self.max_tokens)
        return [(label, replace(base, seed=seed)) for label, seed in SEED_RUNS]

    def fresh_requests(self) -> list[RunRequest]:
        """One seeded request per fresh prompt; the nonce in the system prompt makes each new to any cache."""
        return [RunRequest(prompt=FRESH_PROMPT, system=f"Session {self.nonce + k}.", temperature=1.0,
                           max_tokens=self.max_tokens, seed=SEED_A) for k in range(self.fresh_prompts)]

    def load_request(self) -> RunRequest:
        """R: greedy and seeded, so that only the server's arithmetic can change its answer."""
        return RunRequest(prompt=LOAD_PROMPT, temperature=0.0, max_tokens=self.max_tokens, seed=SEED_A)

    def background(self, count: int) -> list[RunRequest]:
        """`count` requests of other prompts and lengths, to keep the server busy while R runs; seeded, so that where
        the seed is honoured the load is the same each time."""
        return [RunRequest(prompt=BACKGROUND_PROMPTS[k % len(BACKGROUND_PROMPTS)], temperature=1.0, seed=SEED_B + k,
                           max_tokens=min(self.max_tokens * (1 + k % 3), MAX_TOKENS_LIMIT)) for k in range(count)]

    @property
    def fixed_requests(self) -> int:
        """The requests of the parts before the load ladder."""
        return (1 + len(PARAMETER_CHANGES) + len(TOKEN_LIMITS) + len(SEED_RUNS)
                + self.fresh_prompts * (1 + self.warm_repeats))

    def rung_requests(self, background: int) -> int:
        """The requests of one rung in one pass, all in flight (or in one batch) at once."""
        return self.runs + background

    @property
    def load_passes(self) -> int:
        return len(BATCH_VARIANTS) if self.in_batch else 1

    @property
    def alone_requests(self) -> int:
        """R decoded alone once, the reference of every rung in a batch."""
        return 1 if self.in_batch else 0

    def rung_cost(self, background: int) -> int:
        """What one rung really sends: its requests once per pass."""
        return self.load_passes * self.rung_requests(background)

    @property
    def total_requests(self) -> int:
        return self.fixed_requests + self.alone_requests + sum(map(self.rung_cost, self.ladder))

    @property
    def most_in_flight(self) -> int:
        return max(self.rung_requests(k) for k in self.ladder)

    def describe(self) -> str:
        """What it costs, in a line: requests per part, the most in flight at once, the longest answer."""
        rungs = " + ".join(str(self.rung_requests(k)) for k in self.ladder)
        ladder = f"load ladder K={','.join(map(str, self.ladder))}: {rungs}"
        if self.in_batch:
            ladder = f"1 of R alone, then {ladder} for each of {' and '.join(BATCH_VARIANTS)}"
        return (f"{self.total_requests} requests ({self.fixed_requests} for parameters, seed and cold vs warm; "
                f"{ladder}), at most {self.most_in_flight} in flight, answers of at most {self.max_tokens} tokens")

    def bounded(self, cap: int, quota: int) -> tuple[ProbePlan, tuple[SkippedRung, ...]]:
        """This plan without the rungs that would put more than `cap` requests in flight at once, or take the whole
        cost over `quota` requests; each rung left out with the reason."""
        if self.rung_requests(0) > cap:
            raise InvalidRequest(f"runs {self.runs} is over the cap of {cap} requests in flight; lower runs.")
        least = self.fixed_requests + self.alone_requests + self.rung_cost(0)
        if least > quota:
            raise InvalidRequest(f"The probe needs at least {least} requests; {quota} are left in the quota. "
                                 "Lower runs or wait.")
        kept, skipped, cost = [], [], least - self.rung_cost(0)
        for k in self.ladder:
            if self.rung_requests(k) > cap:
                skipped.append(SkippedRung(k, f"{self.rung_requests(k)} in flight is over the cap of {cap}"))
            elif cost + self.rung_cost(k) > quota:
                skipped.append(SkippedRung(k, f"over the {quota} requests left in the quota"))
            else:
                kept.append(k)
                cost += self.rung_cost(k)
        return replace(self, ladder=tuple(kept)), tuple(skipped)
