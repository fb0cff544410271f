"""The llama.cpp backend on the real embedded model."""

from __future__ import annotations

import pytest

from concurrency import assert_one_call_at_a_time
from selfcorrect.backends.base import Completion, GenParams, ModelSpecError, chat, get_backend
from selfcorrect.backends.llamacpp import embedded_model_path

Q1 = chat(("user", "What is 2+2?"))
Q2 = chat(("user", "Name a colour."))
Q3 = chat(("system", "You answer in French."), ("user", "Say hello."))


def test_embedded_model_ships_in_package():
    path = embedded_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 50_000_000


def test_greedy_is_deterministic_and_batch_keeps_order(smollm2):
    params = GenParams(max_new_tokens=16)
    batch = smollm2.generate([Q1, Q2, Q3], params)
    assert all(isinstance(c, Completion) for c in batch)
    singles = [smollm2.generate([q], params)[0] for q in (Q3, Q2, Q1)][::-1]
    assert [c.text for c in batch] == [c.text for c in singles]
    assert len({c.text for c in batch}) == 3  # different chats, different answers
    for c in batch:
        assert c.prompt_tokens > 0 and 0 < c.completion_tokens <= 16
        assert c.finish_reason in ("stop", "length")


def test_prefill_is_continued_not_repeated(smollm2):
    prefill = "The capital of France is"
    out = smollm2.generate(
        [chat(("user", "Tell me something."))], GenParams(max_new_tokens=8, prefill=prefill)
    )[0]
    assert "Paris" in out.text
    assert not out.text.startswith(prefill)
    assert smollm2.prompt_text(Q1, prefill).endswith("<|im_start|>assistant\n" + prefill)


def test_seeded_sampling_repeats(smollm2):
    params = GenParams(max_new_tokens=12, temperature=0.9, seed=7)
    a = smollm2.generate([Q2], params)[0].text
    b = smollm2.generate([Q2], params)[0].text
    assert a == b


def test_temperature_is_honoured(smollm2):
    greedy = smollm2.generate([Q2], GenParams(max_new_tokens=12))[0].text
    sampled = [
        smollm2.generate([Q2], GenParams(max_new_tokens=12, temperature=1.5, seed=s))[0].text
        for s in range(4)
    ]
    assert any(text != greedy for text in sampled)
    # top_k=1 keeps only the most likely token: sampling at any temperature is greedy again
    top1 = GenParams(max_new_tokens=12, temperature=1.5, seed=1, top_k=1)
    assert smollm2.generate([Q2], top1)[0].text == greedy


def test_timing_fields(smollm2):
    out = smollm2.generate([Q1, Q2], GenParams(max_new_tokens=4))
    # sequential: the requests' own seconds add up to at most the call's wall time
    assert out[0].batch_seconds == out[1].batch_seconds > 0
    assert out[0].seconds > 0 and sum(c.seconds for c in out) <= out[0].batch_seconds
    assert all(c.prompt_sha256 and len(c.prompt_sha256) == 64 for c in out)


def test_preset_and_template_errors(smollm2):
    vicuna = get_backend("llamacpp/smollm2", preset="vicuna-fastchat", cache_mb=0)
    text = vicuna.prompt_text(Q1, "The answer is")
    assert text.startswith("A chat between") and text.endswith("ASSISTANT: The answer is<|im_end|>")
    assert vicuna.preset.name == "vicuna-fastchat"
    assert vicuna.describe()["renderer"]["template"] == "builtin:vicuna_v1.1"
    strict = get_backend(
        "llamacpp/smollm2", template="{{ raise_exception('no system please') }}", cache_mb=0
    )
    out = strict.generate([Q1], GenParams(max_new_tokens=2))[0]
    assert out.finish_reason == "error" and "no system please" in out.error


def test_length_limit_and_finish_reason(smollm2):
    out = smollm2.generate(
        [chat(("user", "Write a long story about a dragon."))], GenParams(max_new_tokens=5)
    )[0]
    assert out.completion_tokens == 5 and out.finish_reason == "length"


def test_prefix_state_is_reused_across_interleaved_chats(smollm2):
    params = GenParams(max_new_tokens=8)
    first = smollm2.generate([Q1], params)[0]
    smollm2.generate([Q2], params)  # another conversation in between
    follow = Q1 + chat(("assistant", first.text), ("user", "Are you sure?"))
    again = smollm2.generate([follow], params)[0]
    # everything up to the end of the first answer came from the state cache
    assert again.cached_tokens >= first.prompt_tokens


def test_context_overflow_is_a_per_sample_error(smollm2):
    long = chat(("user", "word " * 5000))
    out = smollm2.generate([long], GenParams(max_new_tokens=4))[0]
    assert out.finish_reason == "error" and "exceeds the context" in (out.error or "")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("nosuch/model", "unknown model 'nosuch/model'"),
        ("llamacpp/not-a-model", "expected llamacpp/smollm2"),
        ("llamacpp/missing.gguf", "no such file"),
    ],
)
def test_bad_model_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        get_backend(spec)


def test_calls_from_several_threads_run_one_at_a_time(smollm2, monkeypatch):
    """A checker model in process may be called by two of a step's parallel calls at once
    (the answering backend is an HTTP one): the model and its cache serve one call at a time,
    and each call's answers are the ones it gives alone."""
    assert_one_call_at_a_time(smollm2, monkeypatch)
