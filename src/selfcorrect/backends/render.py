"""One renderer decides the prompt text of a chat, for every backend.

A `Renderer` holds a chat template (the model's own, a named built-in or given Jinja), the
model's BOS/EOS token texts, the system prompt to use when a chat has none (or None: the
template decides, e.g. SmolLM2's template adds its own default system prompt), and how an
assistant prefill is closed. The in-process backends (llama.cpp, transformers) render with it
and tokenize the text; the OpenAI-compatible backend renders with it in ``completions`` mode,
so the same options give byte-identical prompt text everywhere (tested), and the text's
SHA-256 goes into `Completion.prompt_sha256`.

Prefill (the start of the assistant's answer): the chat is rendered with the prefill as a final
assistant message and the text is cut right after the prefill, so the prefill sits exactly
where that template puts an assistant message's content ("ASSISTANT: The answer is" for
Vicuna, "<|im_start|>assistant\\nThe answer is" for ChatML). This is how transformers'
``continue_final_message`` (and so vLLM's) cuts a rendered chat. With ``eos_after_prefill``
the model's EOS text follows the prefill, reproducing FastChat, which closes every non-empty
assistant message with its separator: the official BBQ prompt ends ``ASSISTANT: The answer
is</s>`` (PAPER.md section 6).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfcorrect.backends.base import Chat, Message, ModelSpecError, sha256_text
from selfcorrect.backends.templates import BUILTIN_TOKENS, NAMED_TEMPLATES

log = logging.getLogger("selfcorrect.backends")
_MARK = "\ue000"  # Unicode private use: never in a template's own text

TEMPLATE_CHOICES = (
    "vicuna_v1.1, llama-2-chat, chatml, model (the model's own), a .gguf file (its template), "
    "a .jinja file, or Jinja source"
)


class TemplateError(ValueError):
    """A chat template could not render a chat (raised by the template, or unsafe code)."""


@dataclass(frozen=True)
class Renderer:
    """Prompt text for a chat; see the module docstring."""

    template: str  # Jinja source
    source: str  # where the template came from: "model", "builtin:vicuna_v1.1", "gguf:...", ...
    bos_token: str = ""
    eos_token: str = ""
    add_bos: bool = False  # the tokenizer adds BOS before the text (unless the text has it)
    system: str | None = None  # system prompt for a chat without one; None: the template decides
    eos_after_prefill: bool = False

    def __post_init__(self) -> None:
        _compile(self.template)  # a broken template fails at load time, not per request

    def render(self, messages: Chat | Sequence[Message], prefill: str = "") -> str:
        """The prompt text: the chat with a generation prompt, then the prefill.

        Raises `TemplateError` when the template rejects the chat.
        """
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        if self.system is not None and not (msgs and msgs[0]["role"] == "system"):
            msgs.insert(0, {"role": "system", "content": self.system})
        if not prefill:
            return self._render(msgs, add_generation_prompt=True)
        # A private-use mark after the prefill finds its end even if the prefill's words also
        # occur later (say, inside the EOS text).
        text = self._render([*msgs, {"role": "assistant", "content": prefill + _MARK}], False)
        at = text.rfind(prefill + _MARK)
        if at < 0 or text.count(_MARK) != 1:
            raise TemplateError(f"chat template error: the template alters the prefill {prefill!r}")
        text = text[: at + len(prefill)]
        return text + self.eos_token if self.eos_after_prefill else text

    def sha256(self, messages: Chat | Sequence[Message], prefill: str = "") -> str:
        return sha256_text(self.render(messages, prefill))

    def describe(self) -> dict[str, Any]:
        return {
            "template": self.source,
            "template_sha256": sha256_text(self.template),
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "tokenizer_adds_bos": self.add_bos,
            "default_system": self.system,
            "eos_after_prefill": self.eos_after_prefill,
        }

    def _render(self, msgs: list[dict[str, str]], add_generation_prompt: bool) -> str:
        try:
            return str(
                _compile(self.template).render(
                    messages=msgs,
                    add_generation_prompt=add_generation_prompt,
                    bos_token=self.bos_token,
                    eos_token=self.eos_token,
                )
            )
        except TemplateError:
            raise
        except Exception as exc:  # jinja2 errors, sandbox violations: the template's fault
            raise TemplateError(f"chat template error: {type(exc).__name__}: {exc}") from exc


def _compile(template: str) -> Any:
    from jinja2 import TemplateError as JinjaError

    try:
        return _compile_cached(template)
    except JinjaError as exc:
        raise ModelSpecError(f"chat template does not compile: {exc}") from exc


def _compile_cached(template: str) -> Any:
    cached = _CACHE.get(template)
    if cached is None:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(message: str) -> None:
            raise TemplateError(f"chat template error: {message}")

        env.globals["raise_exception"] = raise_exception
        cached = _CACHE[template] = env.from_string(template)
    return cached


_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class ModelTokens:
    """What a model itself says about rendering: its template (if any) and special tokens."""

    template: str | None
    bos_token: str = ""
    eos_token: str = ""
    add_bos: bool = False


def make_renderer(
    owner: str,
    model: ModelTokens | None,
    *,
    template: str | None = None,
    system: str | None = None,
    eos_after_prefill: bool | None = None,
    preset: str | None = None,
) -> Renderer:
    """Resolve backend options to a renderer: an explicit option wins, then the preset, then
    the model's own template. A model without a template falls back to ChatML and says so in
    one log line (and in the renderer's ``source``), naming the ``template=`` option.

    `owner` names the backend in messages (e.g. ``hf/lmsys/vicuna-7b-v1.5``).
    """
    from selfcorrect.backends.presets import get_preset

    chosen = get_preset(preset) if preset else None
    if template is None and chosen is not None:
        template = chosen.template
    if system is None and chosen is not None:
        system = chosen.system
    if eos_after_prefill is None:
        eos_after_prefill = chosen.eos_after_prefill if chosen is not None else False
    tokens = model or ModelTokens(None)
    if template is None or template == "model":
        if tokens.template:
            source, text = "model", tokens.template
        elif template == "model":
            raise ModelSpecError(f"{owner}: the model has no chat template; pass template=NAME")
        else:
            log.warning(
                "%s: the model has no chat template, so prompts use ChatML; "
                "pass template=NAME to choose (%s)",
                owner,
                TEMPLATE_CHOICES,
            )
            source, text = "fallback:chatml (the model has no template)", NAMED_TEMPLATES["chatml"]
        return Renderer(
            text,
            source,
            tokens.bos_token,
            tokens.eos_token,
            tokens.add_bos,
            system,
            eos_after_prefill,
        )
    source, text, found = _load_template(template, owner)
    if found is not None:  # a GGUF brings its own tokens
        tokens = found
    elif model is None and template in BUILTIN_TOKENS:  # no model here (server): the
        bos, eos, add_bos = BUILTIN_TOKENS[template]  # template family's usual tokens
        tokens = ModelTokens(None, bos, eos, add_bos)
    return Renderer(
        text, source, tokens.bos_token, tokens.eos_token, tokens.add_bos, system, eos_after_prefill
    )


def _load_template(value: str, owner: str) -> tuple[str, str, ModelTokens | None]:
    """(source label, Jinja source, tokens of a GGUF or None) for a ``template=`` value."""
    if value in NAMED_TEMPLATES:
        return f"builtin:{value}", NAMED_TEMPLATES[value], None
    from selfcorrect.backends.llamacpp import EMBEDDED_MODELS

    if value in EMBEDDED_MODELS or value.endswith(".gguf"):
        from selfcorrect.backends.llamacpp import gguf_model_tokens, resolve_model_path

        path = resolve_model_path(value)
        found = gguf_model_tokens(path)
        if not found.template:
            raise ModelSpecError(f"{owner}: {path} has no chat template")
        return f"gguf:{path.name}", found.template, found
    if value.endswith((".jinja", ".j2")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelSpecError(f"{owner}: no such template file {path}")
        return f"file:{path.name}", path.read_text(encoding="utf-8"), None
    if "{{" in value or "{%" in value:
        return "jinja", value, None
    raise ModelSpecError(f"{owner}: unknown template {value!r}; use {TEMPLATE_CHOICES}")
