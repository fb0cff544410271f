"""Chat templates: the model's own Jinja template, or a named built-in one.

Templates run in Jinja's immutable sandbox, so a template shipped inside a model file cannot run
code. The assistant prefill is appended after the generation prompt, which is how "pre-fill the
start of the answer" works for every template.
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

# Templates whose generation prompt ends without whitespace ("ASSISTANT:", "[/INST]").
_SPACE_BEFORE_PREFILL = (VICUNA_V11, LLAMA2_CHAT)

NAMED_TEMPLATES = {"vicuna_v1.1": VICUNA_V11, "llama-2-chat": LLAMA2_CHAT, "chatml": CHATML}


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
    """Render `messages` with a generation prompt, then the assistant prefill."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise ValueError(f"chat template error: {message}")

    env.globals["raise_exception"] = raise_exception
    text = env.from_string(template).render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
    )
    if prefill and template in _SPACE_BEFORE_PREFILL:
        return text + " " + prefill
    return text + prefill
