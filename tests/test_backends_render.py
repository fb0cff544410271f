"""The renderer every backend uses, the presets of the official runs, and GenParams."""

from __future__ import annotations

import logging

import pytest

from selfcorrect.backends.base import GenParams, ModelSpecError, chat
from selfcorrect.backends.presets import PRESETS, get_preset, paper_preset
from selfcorrect.backends.render import ModelTokens, Renderer, TemplateError, make_renderer
from selfcorrect.backends.templates import CHATML, LLAMA2_CHAT, VICUNA_V11

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def fastchat_vicuna(messages, system=VICUNA_SYSTEM):
    """FastChat's ``vicuna_v1.1`` conversation (separator style ADD_COLON_TWO, seps " " and
    "</s>"), written from its documented format: a message of None ends the prompt with
    "ROLE:", any other message, a prefill included, is closed by its separator."""
    seps = [" ", "</s>"]
    text = system + seps[0]
    for i, (role, message) in enumerate(messages):
        if message is None:
            text += role + ":"
        else:
            text += role + ": " + message + seps[i % 2]
    return text


def test_official_bbq_rendering_ends_with_eos_after_the_prefill():
    # the official BBQ prompt: user question, assistant pre-filled "The answer is" (closed)
    vicuna = Renderer(VICUNA_V11, "builtin", "<s>", "</s>", eos_after_prefill=True)
    got = vicuna.render(chat(("user", "Q?")), "The answer is")
    assert got == fastchat_vicuna([("USER", "Q?"), ("ASSISTANT", "The answer is")])
    assert got.endswith("ASSISTANT: The answer is</s>")
    # the check turn after the answer (no prefill): FastChat's open "ASSISTANT:"
    history = chat(("user", "Q?"), ("assistant", "The answer is (a)."), ("user", "Check."))
    assert vicuna.render(history) == fastchat_vicuna(
        [
            ("USER", "Q?"),
            ("ASSISTANT", "The answer is (a)."),
            ("USER", "Check."),
            ("ASSISTANT", None),
        ]
    )
    # the default keeps the prefill open, so the model continues it
    plain = Renderer(VICUNA_V11, "builtin", "<s>", "</s>")
    assert plain.render(chat(("user", "Q?")), "The answer is").endswith("ASSISTANT: The answer is")


def test_prefill_is_cut_at_its_own_end_even_if_its_text_recurs_later():
    r = Renderer(VICUNA_V11, "builtin", "<s>", "</s>")
    # "s" also occurs in the closing "</s>": the cut must still follow the prefill itself
    assert r.render(chat(("user", "Q")), "s").endswith("USER: Q ASSISTANT: s")
    chatml = Renderer(CHATML, "builtin")
    assert chatml.render(chat(("user", "Q")), "im").endswith("<|im_start|>assistant\nim")


def test_default_system_prompt_only_when_the_chat_has_none():
    r = Renderer(LLAMA2_CHAT, "builtin", "<s>", "</s>", system="Be nice.")
    assert r.render(chat(("user", "Q"))) == "<s>[INST] <<SYS>>\nBe nice.\n<</SYS>>\n\nQ [/INST]"
    own = r.render(chat(("system", "Mine."), ("user", "Q")))
    assert "Mine." in own and "Be nice." not in own


def test_template_errors_are_template_errors():
    strict = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(TemplateError, match="chat template error: roles must alternate"):
        Renderer(strict, "jinja").render(chat(("user", "Q")))
    with pytest.raises(TemplateError, match="unsafe"):
        Renderer("{{ messages.__class__.__mro__ }}", "jinja").render(chat(("user", "Q")))
    with pytest.raises(ModelSpecError, match="does not compile"):
        Renderer("{% for %}", "jinja")


def test_a_model_without_template_falls_back_loudly(caplog):
    with caplog.at_level(logging.WARNING, logger="selfcorrect.backends"):
        r = make_renderer("hf/bare", ModelTokens(None, "<s>", "</s>", True))
    assert r.template == CHATML and r.source.startswith("fallback:chatml")
    [record] = caplog.records
    assert "hf/bare" in record.getMessage() and "template=" in record.getMessage()
    assert "\n" not in record.getMessage()
    with pytest.raises(ModelSpecError, match="has no chat template"):
        make_renderer("hf/bare", ModelTokens(None), template="model")
    with pytest.raises(ModelSpecError, match="unknown template 'vicuna'.*vicuna_v1.1"):
        make_renderer("hf/bare", ModelTokens(None), template="vicuna")


def test_options_beat_presets_beat_the_model():
    model = ModelTokens("{{ 'MODEL' }}", "<s>", "</s>", True)
    assert make_renderer("x", model).source == "model"
    preset = make_renderer("x", model, preset="llama-2-chat")
    assert preset.source == "builtin:llama-2-chat" and preset.eos_token == "</s>"
    assert preset.system == "You are a helpful, respectful and honest assistant."
    own = make_renderer("x", model, preset="llama-2-chat", template="chatml", system="S")
    assert own.source == "builtin:chatml" and own.system == "S"
    assert make_renderer("x", model, preset="vicuna-fastchat").eos_after_prefill


def test_a_gguf_brings_its_own_template_and_tokens():
    r = make_renderer("openai/smollm2", None, template="smollm2")
    assert r.source.startswith("gguf:SmolLM2") and "SmolLM" in r.template
    assert r.eos_token == "<|im_end|>" and r.add_bos is False
    served = make_renderer("openai/x", None, template="llama-2-chat")  # no model at hand
    assert (served.bos_token, served.eos_token, served.add_bos) == ("<s>", "</s>", True)


def test_presets_match_the_official_protocol():
    bbq = paper_preset("bbq", "hf/meta-llama/Llama-2-7b-chat-hf")
    assert bbq.name == "vicuna-fastchat" and bbq.eos_after_prefill  # Vicuna template for both
    assert paper_preset("bbq", "openai/lmsys/vicuna-7b-v1.5").name == "vicuna-fastchat"
    jb = paper_preset("jailbreak", "hf/meta-llama/Llama-2-7b-chat-hf")
    sampled = jb.apply(GenParams(max_new_tokens=64, prefill="P"))
    assert (sampled.temperature, sampled.top_p, sampled.top_k) == (0.6, 0.9, 50)
    assert (sampled.max_new_tokens, sampled.prefill) == (64, "P")
    assert paper_preset("jailbreak", "llamacpp/vicuna-7b.gguf").apply(GenParams()).greedy
    with pytest.raises(ModelSpecError, match="paper protocol covers"):
        paper_preset("bbq", "hf/Qwen/Qwen1.5-7B-Chat")
    with pytest.raises(ModelSpecError, match="unknown preset"):
        get_preset("alpaca")
    assert set(PRESETS) == {"vicuna", "vicuna-fastchat", "llama-2-chat"}


def test_genparams_defaults_are_neutral_and_values_are_checked():
    p = GenParams()
    assert (p.top_k, p.min_p, p.repeat_penalty, p.frequency_penalty, p.presence_penalty) == (
        0,
        0.0,
        1.0,
        0.0,
        0.0,
    )
    for bad in ({"top_k": -1}, {"min_p": 1.5}, {"repeat_penalty": 0}, {"presence_penalty": 3}):
        with pytest.raises(ValueError):
            GenParams(**bad)
