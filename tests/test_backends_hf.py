"""The transformers backend on the real embedded GGUF (dequantised by transformers)."""

from __future__ import annotations

import pytest

from concurrency import assert_one_call_at_a_time
from selfcorrect.backends.base import GenParams, ModelSpecError, chat, get_backend
from selfcorrect.backends.templates import LLAMA2_CHAT, VICUNA_V11, render_chat


@pytest.fixture(scope="module")
def hf():
    return get_backend("hf/smollm2", batch_size=4)


def test_batch_of_four_equals_one_by_one(hf):
    questions = ["What is 2+2?", "Name a colour.", "Say hello in French.", "Is the sun a star?"]
    chats = [chat(("user", q)) for q in questions]
    params = GenParams(max_new_tokens=12)
    batch = hf.generate(chats, params)
    singles = [hf.generate([c], params)[0] for c in chats]
    assert [c.text for c in batch] == [c.text for c in singles]
    assert len({c.text for c in batch}) == 4


def test_prefill_and_length(hf):
    out = hf.generate(
        [chat(("user", "Tell me something."))],
        GenParams(max_new_tokens=6, prefill="The capital of France is"),
    )[0]
    assert "Paris" in out.text and out.completion_tokens <= 6


def test_same_greedy_text_as_llamacpp_on_a_short_answer(hf, smollm2):
    c = [chat(("user", "What is 2+2?"))]
    assert (
        hf.generate(c, GenParams(max_new_tokens=8))[0].text
        == smollm2.generate(c, GenParams(max_new_tokens=8))[0].text
    )


def test_renders_the_same_prompts_as_llamacpp_from_the_same_gguf(hf, smollm2):
    from test_backends_parity import CHATS

    assert hf.renderer.source == "model" and hf.template == smollm2.template
    for c, prefill in CHATS:
        assert hf.prompt_text(c, prefill) == smollm2.prompt_text(c, prefill)
    c, prefill = CHATS[1]  # system prompt and the BBQ prefill
    params = GenParams(max_new_tokens=4, prefill=prefill)
    assert (
        hf.generate([c], params)[0].prompt_sha256 == smollm2.generate([c], params)[0].prompt_sha256
    )


def test_the_models_generation_config_does_not_leak_in(hf):
    c = [chat(("user", "Name three colours."))]
    params = GenParams(max_new_tokens=8)
    before = hf.generate(c, params)[0].text
    config = hf.model.generation_config
    first = hf.tokenizer.encode(before, add_special_tokens=False)[0]
    leaks = {
        "repetition_penalty": 3.0,
        "no_repeat_ngram_size": 2,
        "suppress_tokens": [first],  # would change the very first token
        "bad_words_ids": [[first]],
        "min_new_tokens": 8,
    }
    saved = {k: getattr(config, k, None) for k in leaks}
    for k, v in leaks.items():
        setattr(config, k, v)
    try:
        assert hf.generate(c, params)[0].text == before
    finally:
        for k, v in saved.items():
            setattr(config, k, v)


def test_named_templates_render_the_papers_formats():
    msgs = chat(("system", "SYS"), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"))
    vicuna = render_chat(VICUNA_V11, msgs, eos_token="</s>", prefill="The answer is")
    assert vicuna == "SYS USER: Q1 ASSISTANT: A1</s>USER: Q2 ASSISTANT: The answer is"
    llama2 = render_chat(
        LLAMA2_CHAT, msgs, bos_token="<s>", eos_token="</s>", prefill="The answer is"
    )
    assert (
        llama2
        == "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nQ1 [/INST] A1 </s><s>[INST] Q2 [/INST] The answer is"
    )


def test_templates_cannot_run_code():
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(Exception, match="unsafe|not safely|access"):
        render_chat(evil, chat(("user", "x")))


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSpecError, match="no such file"):
        get_backend(f"hf/{tmp_path}/x.gguf")
    with pytest.raises(ModelSpecError, match="cannot load"):
        get_backend(f"hf/{tmp_path}")


def test_calls_from_several_threads_run_one_at_a_time(hf, monkeypatch):
    assert_one_call_at_a_time(hf, monkeypatch)
