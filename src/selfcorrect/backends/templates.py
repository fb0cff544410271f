"""Chat templates: the model's own Jinja template, or a named built-in one.

Templates run in Jinja's immutable sandbox, so a template shipped inside a model file cannot run
code. How a chat and its prefill become text is decided in `selfcorrect.backends.render`.
"""

from __future__ import annotations

from collections.abc import Sequence

from selfcorrect.backends.base import Chat, Message

# Vicuna v1.1 (FastChat's "vicuna_v1.1"): system line, then "USER: ... ASSISTANT: ...</s>".
VICUNA_V11 = (
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}"
    "{% set loop_messages = messages[1:] %}{% else %}"
    "{{ 'A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user\\'s questions. ' }}"
    "{% set loop_messages = messages %}{% endif %}"
    "{% for m in loop_messages %}{% if m['role'] == 'user' %}{{ 'USER: ' + m['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Llama-2-chat: [INST] <<SYS>> ... <</SYS>> ... [/INST] answer </s><s>[INST] ...
LLAMA2_CHAT = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set sys = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set sys = '' %}"
    "{% set loop_messages = messages %}{% endif %}"
    "{% for m in loop_messages %}{% if m['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + (sys if loop.first else '') + m['content'] + ' [/INST]' }}"
    "{% else %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}{% endfor %}"
)

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

NAMED_TEMPLATES = {"vicuna_v1.1": VICUNA_V11, "llama-2-chat": LLAMA2_CHAT, "chatml": CHATML}

# (bos, eos, tokenizer adds BOS) of each built-in template's model family, used where no model
# is at hand to ask (a server renders nothing for us in completions mode).
BUILTIN_TOKENS = {
    "vicuna_v1.1": ("<s>", "</s>", True),
    "llama-2-chat": ("<s>", "</s>", True),
    "chatml": ("", "<|im_end|>", False),
}


def resolve_template(name_or_source: str) -> str:
    """A built-in template by name, or the given Jinja source unchanged."""
    return NAMED_TEMPLATES.get(name_or_source, name_or_source)


def render_chat(
    template: str,
    messages: Chat | Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    prefill: str = "",
) -> str:
    """Render `messages` with a generation prompt, then the assistant prefill.

    A shortcut for `selfcorrect.backends.render.Renderer` with no default system prompt.
    """
    from selfcorrect.backends.render import Renderer

    return Renderer(template, "jinja", bos_token, eos_token).render(messages, prefill)
