"""The pages' logic with streamlit.testing.v1.AppTest: a scripted backend, and the loopback server as Azure."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner_utils.exceptions import RerunException, StopException
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
from streamlit.testing.v1 import AppTest

import ui.live
import ui.resources
from core.backends import registry
from core.models import RunError
from tests.apptest import APP, app, captions, experiment, html, is_stale, made_by_lines, numbers, plain, verdicts
from tests.scripted import ScriptedBackend, by_seed, texts
from ui.prompts import CLASSIC, PRESETS, box_keys

pytestmark = pytest.mark.usefixtures("app_environment")


def test_the_app_opens_on_the_classic_demo_with_what_to_watch_for(scripted):
    scripted(texts("x"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.title[0].value == "Seed vs no seed"
    assert (at.text_area(key="seed_system_0").value, at.text_area(key="seed_prompt_0").value) == CLASSIC
    assert "A seed fixes the model's random choices" in captions(at)[0] and "seed 42 vs none" in captions(at)[0]
    assert at.slider(key="temperature").value == 0.1
    assert not [w for w in at.sidebar.toggle if w.key == "use_seed"]  # the seed is the page's, not the sidebar's


def test_the_sidebar_puts_parameters_before_backend_and_folds_the_operator_notes(azure):
    at = experiment()
    assert [h.value for h in at.sidebar.header] == ["Parameters", "Backend"]
    [notes] = [e for e in at.sidebar.expander if e.label.startswith("Operator notes")]
    assert any("open to anyone" in plain(w.value) for w in notes.warning)


@pytest.mark.parametrize("page", ["pages/sweep.py", "pages/history.py"])
def test_pages_that_set_their_own_parameters_show_none_in_the_sidebar(scripted, page):
    scripted(texts("x"))
    at = app(page)
    sidebar_keys = {widget.key for kind in ("slider", "number_input", "toggle", "text_input")
                    for widget in getattr(at.sidebar, kind)}
    assert not sidebar_keys & {"temperature", "top_p", "runs", "max_tokens", "use_seed", "seed"}
    assert "Parameters" not in [h.value for h in at.sidebar.header]
    assert at.sidebar.select_slider(key="concurrency").value == "all"


def test_experiment_page_starts_with_the_classic_demo(scripted):
    scripted(texts("x"))
    at = experiment()
    assert at.text_area(key="experiment_system_0").value == "You always produce 3-sentence answers."
    assert at.text_area(key="experiment_prompt_0").value == "Create a story about red panda."
    assert at.slider(key="temperature").value == 0.1
    assert at.text_input(key="seed").value == "42"
    assert at.toggle(key="use_seed").value is True
    assert at.slider(key="runs").value == 5
    assert at.number_input(key="max_tokens").value == 65  # the embedded model's classic answer ends its 3rd sentence
    assert at.select_slider(key="concurrency").value == "all"
    assert at.button(key="run").label == "Run"


def test_a_preset_fills_both_prompts(scripted):
    scripted(texts("x"))
    at = experiment()
    at.pills(key="experiment_preset").set_value("Factual question").run()
    system_key, prompt_key = box_keys("experiment", "Factual question")
    assert at.text_area(key=prompt_key).value == "What causes the seasons on Earth?"
    assert at.text_area(key=system_key).value == "You answer precisely and briefly."


def test_edits_stay_under_their_preset_and_going_back_starts_from_the_preset_text(scripted):
    backend = scripted(texts("x"))
    at = experiment()
    at.pills(key="experiment_preset").set_value("Long answer").run()
    at.text_area(key=box_keys("experiment", "Long answer")[1]).set_value("My own question?").run()
    at.button(key="run").click().run()
    assert {r.prompt for r in backend.calls} == {"My own question?"}
    at.pills(key="experiment_preset").set_value("Story (classic demo)").run()
    assert at.text_area(key=box_keys("experiment")[1]).value == CLASSIC[1]


def test_each_prompt_box_carries_its_text_in_the_element_itself(scripted):
    """Regression: the defaults were written to the session state and the boxes sent with an empty default, so a
    browser that drew a box again from its element (a dozen sessions opening at once) showed an empty prompt."""
    scripted(texts("x"))
    at = experiment()
    for _ in range(2):  # the first run and a rerun alike
        system, prompt = (at.text_area(key=k) for k in box_keys("experiment"))
        assert (system.proto.default, prompt.proto.default) == CLASSIC
        at.run()
    at.pills(key="experiment_preset").set_value("Small coding task").run()
    system, prompt = (at.text_area(key=k) for k in box_keys("experiment", "Small coding task"))
    assert (system.proto.default, prompt.proto.default) == PRESETS["Small coding task"]


def test_a_run_shows_cards_headline_groups_and_the_diff(scripted):
    backend = scripted(texts("The red panda ate bamboo today.", "The red panda ate bamboo today.",
                             "The red panda ate apples today."))
    at = experiment()
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    assert not at.exception
    assert len(backend.calls) == 3
    assert {r.seed for r in backend.calls} == {42}
    assert numbers(at) == {"unique": "2 / 3", "identical": "67%", "divergence": "word 5", "agreement": "33%",
                           "fingerprints": "1"}
    assert verdicts(at) == ["2 of 3 agree; run 3 parts at word 5"]
    assert made_by_lines(at) == ["OpenAI-compatible server · scripted-model · T 0.1 · top_p 1 · seed 42 · N 3"]
    page = html(at)
    assert page.index("data-verdict") < page.index("rl-card")  # the verdict comes first
    assert page.count("rl-card rl-grouped") == 2  # A ×2 stacked, B
    assert "<mark>bamboo </mark>" in page and "<mark>apples </mark>" in page
    assert "◆ fork" in page
    assert at.selectbox(key="experiment_1_left").value == 0  # the modal output…
    assert at.selectbox(key="experiment_1_right").value == 2  # …against the most dissimilar run


def test_results_carry_their_settings_and_go_stale_when_a_control_changes(scripted):
    backend = scripted(texts("Same words."))
    at = experiment()
    at.button(key="run").click().run()
    assert not is_stale(at) and made_by_lines(at)[0].endswith("seed 42 · N 5")
    at.text_input(key="seed").set_value("7").run()
    assert is_stale(at)
    assert made_by_lines(at)[0].endswith("seed 42 · N 5")  # still naming what made them
    at.button(key="run").click().run()
    assert not is_stale(at) and made_by_lines(at)[0].endswith("seed 7 · N 5")
    at.slider(key="temperature").set_value(0.7).run()
    assert is_stale(at)
    assert len(backend.calls) == 10


def test_a_run_folds_the_prompt_so_the_verdict_comes_next(scripted):
    scripted(texts("Same words."))
    at = experiment()
    assert at.session_state["experiment_prompt_open"] is True
    at.button(key="run").click().run()
    assert at.session_state["experiment_prompt_open"] is False


def test_the_style_block_is_sent_once_however_many_cards_the_page_draws(scripted):
    """Regression: every card, diff and legend carried the 2.2 KB CSS block (50 cards, 50 copies)."""
    scripted(texts("The red panda ate bamboo today.", "The red panda ate apples today."))
    at = experiment()
    at.slider(key="runs").set_value(10)
    at.button(key="run").click().run()
    assert not at.exception
    page = html(at)
    assert page.count("rl-card rl-grouped") == 2 and "◆ fork" in page
    assert page.count("rl-card{") == 1


def test_choosing_another_pair_redraws_the_diff_without_sending(scripted):
    backend = scripted(texts("A cat.", "A dog.", "A cat."))
    at = experiment()
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    at.selectbox(key="experiment_1_right").set_value(2).run()
    assert not at.exception
    assert len(backend.calls) == 3
    assert "Run 1 and run 3 are byte-identical." in [plain(s.value) for s in at.success]


def test_all_identical_is_announced_as_good_news(scripted):
    scripted(texts("Same words."))
    at = experiment()
    at.button(key="run").click().run()
    assert verdicts(at) == ["5 of 5 identical — reproducible"]
    assert numbers(at)["divergence"] == "all identical"


@pytest.mark.parametrize("widget, value, message", [
    ("experiment_prompt_0", "   ", "prompt is empty"),
    ("seed", "forty-two", "seed must be a whole number"),
    ("seed", str(2**63), "signed 64-bit"),
])
def test_bad_input_sends_nothing_and_names_the_field(scripted, widget, value, message):
    backend = scripted(texts("x"))
    at = experiment()
    (at.text_area if widget.startswith("experiment") else at.text_input)(key=widget).set_value(value)
    at.button(key="run").click().run()
    assert not at.exception
    assert backend.calls == []
    assert message in plain(at.error[0].value) and plain(at.error[0].value).startswith("Nothing was sent")


def test_model_output_is_escaped_and_runs_nothing(scripted):
    payload = '<script>alert(1)</script><img src=x onerror="alert(2)"> & done'
    scripted(texts(payload, "plain"))
    at = experiment()
    at.slider(key="runs").set_value(2)
    at.button(key="run").click().run()
    page = html(at)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt; &amp; done" in page


def test_a_failed_run_shows_in_its_card_and_the_others_stay(scripted):
    def answer(request, number):
        return RunError("rate_limit", "Rate limited (429): lower the runs.", 429) if number == 1 else "Fine."

    scripted(answer)
    at = experiment()
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    assert not at.exception
    page = html(at)
    assert page.count("rl-card rl-failed") == 1
    assert "Rate limited (429): lower the runs." in page
    assert "1 of 3 runs failed" in html(at)
    assert numbers(at)["unique"] == "1 / 2"


def test_mixed_fingerprints_are_flagged(scripted):
    scripted(texts("Same."), fingerprints=("fp_a", "fp_a", "fp_b"))
    at = experiment()
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    assert numbers(at)["fingerprints"] == "2 (mixed)"
    assert "fp_a ×2, fp_b ×1" in html(at)


def test_runs_without_a_fingerprint_are_not_a_second_fingerprint(scripted):
    scripted(texts("Same."), fingerprints=("fp_a", None))
    at = experiment()
    at.slider(key="runs").set_value(4)
    at.button(key="run").click().run()
    assert numbers(at)["fingerprints"] == "1"
    assert "Served by" not in html(at)


def test_seed_page_runs_both_scenarios_side_by_side(scripted):
    backend = scripted(by_seed)
    at = app("pages/seed_vs_no_seed.py")
    at.slider(key="runs").set_value(4)
    at.button(key="run_both").click().run()
    assert not at.exception
    assert len(backend.calls) == 8
    assert sum(r.seed is None for r in backend.calls) == 4
    assert re.findall(r'rl-v-title">([^<]*)<', html(at)) == ["Without a seed", "With seed 42"]
    assert verdicts(at) == ["4 different answers, they part at word 3", "4 of 4 identical — reproducible"]
    assert [line.split(" · ")[4] for line in made_by_lines(at)] == ["no seed", "seed 42"]
    assert "almost always" in plain(at.info[0].value)
    assert ("With seed 42: 4/4 identical vs Without a seed: 1/4; p = 0.071, Fisher's exact test (one-sided): "
            "not beyond chance at these N.") in [plain(m.value) for m in at.markdown]


class SlowScripted(ScriptedBackend):
    """Answers after a pause on the event loop, noting when each call starts and ends."""

    def __init__(self):
        super().__init__(by_seed)
        self.events: list[tuple[str, int | None]] = []

    async def complete(self, request):
        self.events.append(("start", request.seed))
        await asyncio.sleep(0.3)
        self.events.append(("end", request.seed))
        return await super().complete(request)


def test_seed_page_sends_both_scenarios_at_the_same_time(monkeypatch):
    """Regression: the unseeded batch was sent, and had ended, before the seeded one started."""
    backend = SlowScripted()
    monkeypatch.setattr(ui.resources, "make_backend", lambda settings: backend)
    at = app("pages/seed_vs_no_seed.py")
    at.button(key="run_both").click().run()
    assert not at.exception
    before_any_end = backend.events[:backend.events.index(next(e for e in backend.events if e[0] == "end"))]
    assert {seed for _, seed in before_any_end} == {None, 42}
    assert len(before_any_end) == 10


def test_seed_page_results_go_stale_when_a_parameter_changes(scripted):
    scripted(by_seed)
    at = app("pages/seed_vs_no_seed.py")
    at.button(key="run_both").click().run()
    assert not is_stale(at)
    at.slider(key="temperature").set_value(0.5).run()
    assert is_stale(at)
    assert verdicts(at)[1] == "5 of 5 identical — reproducible"  # still shown, dimmed


def test_seed_page_uses_42_and_has_no_seed_widget(scripted):
    backend = scripted(by_seed)
    at = app("pages/seed_vs_no_seed.py")
    assert not [t for t in at.toggle if t.key == "use_seed"] and not [t for t in at.text_input if t.key == "seed"]
    at.button(key="run_both").click().run()
    assert {r.seed for r in backend.calls} == {None, 42}


def test_without_configuration_the_embedded_model_answers_with_a_note_and_an_estimate():
    at = experiment()
    assert at.selectbox(key="backend").value == "local"
    assert any("embedded model answers, offline" in plain(i.value) for i in at.sidebar.info)
    [cost] = [c for c in captions(at) if c.startswith("This run: ")]
    assert re.search(r"This run: 5 requests.* · about [\d,]+ s on the embedded model$", cost)
    at.slider(key="runs").set_value(2)
    at.number_input(key="max_tokens").set_value(8)
    at.button(key="run").click().run()
    assert not at.exception
    assert numbers(at)["unique"] == "1 / 2"



def test_loopback_azure_deployment_end_to_end(azure):
    at = experiment()
    assert at.selectbox(key="backend").value == "azure"
    [cost] = [c for c in captions(at) if c.startswith("This run: ")]
    assert cost.endswith("600 of 600 requests left this hour")  # no estimate: only the embedded model is timed
    sidebar_text = plain("\n".join(m.value for m in at.sidebar.markdown))
    assert "gpt-test" in sidebar_text and "2024-06-01" in sidebar_text and "127.0.0.1" in sidebar_text
    assert "Key: set" in sidebar_text
    at.slider(key="runs").set_value(3)
    at.button(key="run").click().run()
    assert not at.exception
    assert len(azure.received) == 3
    assert {r.body["seed"] for r in azure.received} == {42}
    assert numbers(at)["unique"] == "1 / 3"
    assert "fp_fake_1" in html(at)


def test_test_connection_reports_success_and_the_exact_failure(azure):
    at = app()
    at.button(key="test_connection").click().run()
    assert plain(at.sidebar.success[0].value).startswith("Connected: gpt-test answered in")
    azure.faults.append("404")
    at.button(key="test_connection").click().run()
    assert plain(at.sidebar.error[0].value).startswith("not_found: Not found (404): check OPENAI_API_DEPLOY")


def test_the_key_appears_nowhere_even_when_the_server_echoes_it(azure, monkeypatch):
    secret = "sk-wrong-SECRET-0000111122223333"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    at = experiment()
    at.slider(key="runs").set_value(2)
    at.button(key="run").click().run()
    at.button(key="test_connection").click().run()
    assert azure.received[0].headers["api-key"] == secret
    everything = repr(at._tree) + html(at) + "".join(e.value for e in at.error) + repr(dict(at.session_state))
    assert "Incorrect API key provided: ***" in html(at)
    assert secret not in everything


def test_passcode_gate_shows_only_the_gate_until_the_right_passcode(scripted, monkeypatch):
    backend = scripted(texts("x"))
    monkeypatch.setenv("APP_PASSCODE", "red-panda-2026")
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert [b.key for b in at.button] == ["enter_passcode"]
    assert not at.sidebar.slider and not at.text_area
    at.text_input(key="passcode").set_value("wrong")
    at.button(key="enter_passcode").click().run()
    assert plain(at.error[0].value) == "That passcode is not right."
    at.text_input(key="passcode").set_value("red-panda-2026")
    at.button(key="enter_passcode").click().run()
    assert not at.exception
    assert at.button(key="run_both").label == "Run both"
    at.button(key="run_both").click().run()
    assert len(backend.calls) == 10


def test_an_auth_section_in_secrets_requires_sign_in(scripted):
    scripted(texts("x"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s",
                          "client_id": "c", "client_secret": "cs",
                          "server_metadata_url": "https://login.example.invalid/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b.key for b in at.button] == ["sign_in"]
    assert not at.text_area


def test_limits_bound_the_widgets_and_the_quota_refuses_before_sending(scripted, monkeypatch):
    backend = scripted(texts("x"))
    monkeypatch.setenv("REPRO_MAX_RUNS", "8")
    monkeypatch.setenv("REPRO_REQUESTS_PER_HOUR", "12")
    at = experiment()
    assert at.slider(key="runs").max == 8
    assert "This run: 5 requests, at most 325 completion tokens · 12 of 12 requests left this hour" in captions(at)
    at.slider(key="runs").set_value(8)
    at.button(key="run").click().run()
    assert len(backend.calls) == 8
    at.button(key="run").click().run()
    assert len(backend.calls) == 8
    assert "needs 8 requests but 4 of your 12 per hour are left" in plain(at.error[0].value)
    assert plain(at.error[0].value).startswith("Nothing was sent")


def test_an_open_instance_with_a_paid_backend_says_so(azure):
    at = app()
    assert any("open to anyone" in plain(w.value) for w in at.sidebar.warning)


def test_a_passcode_closes_the_instance_and_the_note_goes(azure, monkeypatch):
    monkeypatch.setenv("APP_PASSCODE", "pc")
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="passcode").set_value("pc")
    at.button(key="enter_passcode").click().run()
    assert not at.exception
    assert at.selectbox(key="backend").value == "azure"  # through the gate, with the sidebar drawn…
    assert not any("open to anyone" in plain(w.value) for w in at.sidebar.warning)  # …and no "open" warning


def test_the_seed_page_checks_each_batch_against_the_run_limit(scripted, monkeypatch):
    backend = scripted(by_seed)
    monkeypatch.setenv("REPRO_MAX_RUNS", "6")
    at = app("pages/seed_vs_no_seed.py")
    at.slider(key="runs").set_value(6)
    at.button(key="run_both").click().run()
    assert not at.error
    assert len(backend.calls) == 12


def test_a_backend_named_by_the_operator_is_the_only_choice(monkeypatch, fake_server, azure_env):
    for name, value in azure_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REPRO_BACKEND", "local")
    at = app()
    assert at.selectbox(key="backend").options == ["Embedded SmolLM2 (offline)"]


def test_a_prompt_over_the_configured_size_is_refused(scripted, monkeypatch):
    backend = scripted(texts("x"))
    monkeypatch.setenv("REPRO_MAX_PROMPT_CHARS", "20")
    at = experiment()
    at.text_area(key="experiment_prompt_0").set_value("A prompt of more than twenty characters.")
    at.button(key="run").click().run()
    assert backend.calls == []
    assert "this instance allows 20 (REPRO_MAX_PROMPT_CHARS)" in plain(at.error[0].value)


def test_logprobs_show_what_each_run_chose_at_the_first_fork(azure):
    azure.answers.extend(["The red panda slept.", "The red panda ate."])
    at = experiment()
    at.slider(key="runs").set_value(2)
    at.select_slider(key="concurrency").set_value(1)
    at.toggle(key="logprobs").set_value(True)
    at.button(key="run").click().run()
    assert not at.exception
    assert all(r.body["logprobs"] is True and r.body["top_logprobs"] == 5 for r in azure.received)
    assert any(m.value.startswith("**At the first fork") for m in at.main.markdown)
    page = html(at)
    assert "Run 1 chose <code>␣slept.</code> (90.5%)" in page
    assert "Run 2 chose <code>␣ate.</code> (90.5%)" in page
    assert 'class="rl-at"' in page
    [tree] = at.code
    assert tree.value.splitlines()[0] == "3 words shared → 'slept.' ×1 / 'ate.' ×1"


def test_without_logprobs_the_page_says_how_to_see_the_fork(scripted):
    scripted(texts("The red panda slept.", "The red panda ate."))
    at = experiment()
    at.slider(key="runs").set_value(2)
    at.button(key="run").click().run()
    assert "Ask for log-probabilities" in " ".join(plain(c.value) for c in at.caption)


def test_the_engine_modes_section_shows_the_cache_mode_fork():
    """The embedded model for real: deterministic gives N identical answers, cache mode's first answer differs."""
    at = app("pages/seed_vs_no_seed.py")
    assert re.search(r"Both scenarios: 10 requests.* · about [\d,]+ s on the embedded model", " ".join(captions(at)))
    at.slider(key="runs").set_value(3)
    at.number_input(key="max_tokens").set_value(80)
    at.button(key="run_modes").click().run()
    assert not at.exception
    assert verdicts(at)[0] == "3 of 3 identical — reproducible"
    assert verdicts(at)[1].startswith("2 of 3 agree; run 1 parts at word")
    assert "re-evaluates only its last token" in plain(at.main.info[-1].value)


def test_the_quota_line_counts_the_run_just_sent(scripted):
    scripted(texts("x"))
    at = experiment()
    at.button(key="run").click().run()
    assert any("595 of 600 requests left this hour" in c for c in captions(at))


def test_without_a_working_history_the_runs_still_happen_and_say_they_were_not_saved(scripted, monkeypatch, tmp_path):
    backend = scripted(texts("x"))
    (tmp_path / "not-a-file").mkdir()
    monkeypatch.setenv("REPRO_HISTORY_PATH", str(tmp_path / "not-a-file"))
    at = experiment()
    assert "The history is unavailable, so runs are not saved" in plain(at.sidebar.warning[0].value)
    at.button(key="run").click().run()
    assert not at.exception
    assert len(backend.calls) == 5
    assert "Not (all) saved to the history: The history is unavailable" in plain(at.main.warning[0].value)


def test_a_misconfigured_backend_is_named_and_nothing_can_be_sent(monkeypatch):
    monkeypatch.setenv("REPRO_BACKEND", "compatible")
    at = experiment()
    assert "The compatible backend needs COMPATIBLE_BASE_URL, COMPATIBLE_MODEL" in plain(at.sidebar.error[0].value)
    assert at.button(key="run").disabled


def interrupt_at_the_first_card(monkeypatch, exception: BaseException, *, visitor_still_here: bool = True) -> None:
    """What Streamlit does when the visitor clicks again (or leaves) while a batch runs: it stops the script run at
    its next drawing call, here the first run card. By default (runner.fastReruns) it stops the run with
    StopException and starts a new one for the click; without fast reruns it raises RerunException instead."""
    draw = ui.live.run_card
    interrupted = []

    def card_or_interruption(result):
        if not interrupted:
            interrupted.append(result)
            raise exception
        return draw(result)

    monkeypatch.setattr(ui.live, "run_card", card_or_interruption)
    monkeypatch.setattr(ui.live, "_visitor_still_here", lambda: visitor_still_here)


def clicked_again(at: AppTest, button: str) -> RerunException:
    """The rerun a second click on `button` asks for: this page again, every widget as it is, the button pressed."""
    at.button(key=button).click()
    return RerunException(RerunData(widget_states=at._tree.get_widget_states(),
                                    page_script_hash=at._finished_page_script_hash))


def test_a_click_while_the_batch_runs_sends_no_second_batch_and_counts_no_quota(scripted, monkeypatch):
    """Regression: the second click cancelled the batch and sent a new one, counting the quota again each time."""
    backend = scripted(texts("Same words."))
    at = experiment()
    interrupt_at_the_first_card(monkeypatch, StopException())
    at.button(key="run").click().run()  # the first click's run, stopped by the second click…
    at.button(key="run").click().run()  # …whose run finds the batch still on its way
    assert not at.exception
    assert len(backend.calls) == 5
    assert "this click sent nothing and took nothing from your quota" in plain(at.warning[0].value)
    assert verdicts(at) == ["5 of 5 identical — reproducible"]
    assert any("595 of 600 requests left this hour" in c for c in captions(at))


def test_without_fast_reruns_the_rerun_goes_on_showing_the_same_batch(scripted, monkeypatch):
    backend = scripted(texts("Same words."))
    at = experiment()
    interrupt_at_the_first_card(monkeypatch, clicked_again(at, "run"))
    at.run()
    assert not at.exception
    assert len(backend.calls) == 5
    assert "this click sent nothing" in plain(at.warning[0].value)
    assert verdicts(at) == ["5 of 5 identical — reproducible"]


def test_a_second_run_both_while_the_pair_runs_sends_nothing_more(scripted, monkeypatch):
    backend = scripted(by_seed)
    at = app("pages/seed_vs_no_seed.py")
    at.slider(key="runs").set_value(3)
    interrupt_at_the_first_card(monkeypatch, StopException())
    at.button(key="run_both").click().run()
    at.button(key="run_both").click().run()
    assert not at.exception
    assert len(backend.calls) == 6
    assert re.findall(r'rl-v-title">([^<]*)<', html(at)) == ["Without a seed", "With seed 42"]
    assert any("this click sent nothing" in plain(w.value) for w in at.main.warning)
    assert any("594 of 600 requests left this hour" in c for c in captions(at))


def test_a_visitor_leaving_mid_batch_cancels_it_and_the_next_click_runs(azure, monkeypatch):
    azure.latency_s = 0.6  # ten runs two at a time take 3 s: the cancel has landed long before
    at = experiment()
    at.slider(key="runs").set_value(10)
    at.select_slider(key="concurrency").set_value(2)
    interrupt_at_the_first_card(monkeypatch, StopException(), visitor_still_here=False)
    at.button(key="run").click().run()
    time.sleep(1.5)  # the cancel lands when the next run arrives (~1.2 s): by now it has
    sent = len(azure.received)
    time.sleep(0.9)
    assert len(azure.received) == sent < 10  # cancelled: nothing more went out, and far from all ten
    at.slider(key="runs").set_value(2)
    at.button(key="run").click().run()
    assert not at.main.warning
    assert numbers(at)["unique"] == "1 / 2"


def test_a_provider_named_in_repro_providers_is_offered_and_answers(monkeypatch):
    """Adding a provider is one registration: the sidebar offers the toy and runs on it, and ui/ never names it."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))  # the toy leaves with this test
    monkeypatch.delitem(sys.modules, "tests.toy_provider", raising=False)
    monkeypatch.setenv("REPRO_PROVIDERS", "tests.toy_provider")
    monkeypatch.setenv("TOY_MODEL", "echo-1")
    registry.import_plugins(os.environ["REPRO_PROVIDERS"])  # what core.backends does with it at process start
    at = experiment()
    backend = at.selectbox(key="backend")
    assert backend.options == ["Toy echo", "Embedded SmolLM2 (offline)"] and backend.value == "toy"
    assert "echo-1" in plain("\n".join(m.value for m in at.sidebar.markdown))
    at.text_area(key=box_keys("experiment")[1]).set_value("hello toy")
    at.slider(key="runs").set_value(2)
    at.button(key="run").click().run()
    assert not at.exception
    page = html(at)
    assert "rl-card rl-grouped" in page and "hello toy" in page
    assert verdicts(at) == ["2 of 2 identical — reproducible"]
    ui = Path(APP).parent / "ui"
    assert not [path.name for path in ui.glob("*.py") if re.search(r"\btoy\b", path.read_text(), re.IGNORECASE)]


def test_present_in_the_url_turns_presentation_mode_on_and_the_toggle_off(scripted):
    scripted(by_seed)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["present"] = "1"
    at.run()
    assert not at.exception
    assert at.toggle(key="present").value is True
    assert "html{font-size:20px}" in html(at)  # larger type, and the sidebar hidden by the same rules
    assert at.session_state["seed_prompt_open"] is False  # a room sees the verdicts, not the prompt editor, first
    at.toggle(key="present").set_value(False).run()
    assert "html{font-size:20px}" not in html(at)
    assert "present" not in at.query_params


from core.history import HistoryLocation, Store, open_store  # noqa: E402 - the tests of ui.resume, added last
from core.models import BackendInfo, RunRequest, RunResult  # noqa: E402
from ui.resume import interrupted_notice  # noqa: E402


def _history(tmp_path: Path) -> Store:
    """The history the app keeps in app_environment's folder."""
    return open_store(HistoryLocation(sqlite_path=str(tmp_path / "history.sqlite3")))


def _interrupted_batch(history: Store, runs_in: int, planned: int = 10) -> str:
    """An experiment as a tab closed mid-batch leaves it: `runs_in` of `planned` runs saved, never finished."""
    experiment_id = history.create(RunRequest(prompt="Name a colour.", seed=42),
                                   BackendInfo("azure", "gpt-test", "res.openai.azure.com"), planned)
    history.add_runs([(experiment_id, RunResult(index=k, latency_ms=10.0, text="Red.")) for k in range(runs_in)])
    return experiment_id


def _reloaded(page: str, experiment_id: str) -> AppTest:
    """A new session on `page` whose URL names `experiment_id` as its last batch, as a reloaded tab's does."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page)
    at.query_params["batch"] = experiment_id
    at.run()
    assert not at.exception
    return at


@pytest.mark.parametrize("page", ["pages/experiment.py", "pages/seed_vs_no_seed.py"])
def test_a_reload_mid_batch_points_to_the_interrupted_experiment_in_history(scripted, tmp_path, page):
    scripted(texts("x"))
    experiment_id = _interrupted_batch(_history(tmp_path), 3)
    at = _reloaded(page, experiment_id)
    [notice] = at.main.warning
    assert notice.value == (f"Your last batch was interrupted after 3 of 10 runs — "
                            f"[open it in History](history?experiment={experiment_id}).")


def test_a_finished_batch_named_in_the_url_shows_no_notice(scripted, tmp_path):
    scripted(texts("x"))
    history = _history(tmp_path)
    experiment_id = _interrupted_batch(history, 10)
    history.finish(experiment_id)
    assert not _reloaded("pages/experiment.py", experiment_id).main.warning
    assert not _reloaded("pages/experiment.py", "not-in-the-history").main.warning


def test_a_new_batch_takes_the_place_of_the_interrupted_one_in_the_url(scripted, tmp_path):
    scripted(texts("x"))
    history = _history(tmp_path)
    lost = _interrupted_batch(history, 2)
    at = _reloaded("pages/experiment.py", lost)
    at.slider(key="runs").set_value(2)
    at.button(key="run").click().run()
    assert not at.exception
    [new] = [row.id for row in history.list() if row.id != lost]
    assert at.query_params["batch"] == new  # named while it ran, so a reload now would find it, complete
    assert not at.main.warning
    at.run()
    assert not at.main.warning  # the session's own batch is never "interrupted"


def test_both_scenarios_of_an_interrupted_pair_are_counted_and_linked(tmp_path):
    history = _history(tmp_path)
    first, second = _interrupted_batch(history, 4), _interrupted_batch(history, 2)
    assert interrupted_notice([history.get(first), history.get(second)]) == (
        f"Your last batch was interrupted after 6 of 20 runs — open them in History: "
        f"[part 1](history?experiment={first}) · [part 2](history?experiment={second}).")
