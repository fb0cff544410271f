"""Every ``kind:arg`` spec family, parsed in one place with one error format.

A spec names a component on the command line or in a config: a check (``oracle:0.25``), a
defence (``cac:2``), a judge (``llm:llamacpp/smollm2``), an attack (``transfer:vicuna``) or a
model (``llamacpp/smollm2``; models use ``/`` instead of ``:``). `parse` turns the text into a
`Spec` once, validating the kind and the argument; configs hold the parsed `Spec`, so nothing
downstream re-reads a spec string. Errors read the same for every family::

    unknown check 'x': use none, self, verdict, oracle:P or model:SPEC
    check 'oracle:2': P must be a number in [0, 1]

Example::

    >>> from selfcorrect.specs import parse
    >>> spec = parse("check", "oracle:0.25")
    >>> spec.kind, spec.value
    ('oracle', 0.25)
    >>> str(spec)
    'oracle:0.25'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SpecError(ValueError):
    """A spec names an unknown kind or carries a bad argument."""


@dataclass(frozen=True)
class Spec:
    """A parsed spec: its family, kind, the raw argument and the argument's parsed value."""

    family: str
    kind: str
    arg: str | None = None
    value: Any = None

    def __str__(self) -> str:
        if self.arg is None:
            return self.kind
        return f"{self.kind}{FAMILIES[self.family].separator}{self.arg}"


@dataclass(frozen=True)
class Arg:
    """How one kind reads its argument: `name` in messages, `parse` raising ValueError."""

    name: str
    parse: Callable[[str], Any]
    rule: str  # what a valid value is, for the error message
    optional: bool = False  # the kind is valid without it too


def number(lo: float, hi: float) -> Callable[[str], float]:
    def read(text: str) -> float:
        value = float(text)
        if not lo <= value <= hi:
            raise ValueError(text)
        return value

    return read


def whole(lo: int, hi: int) -> Callable[[str], int]:
    def read(text: str) -> int:
        value = int(text)
        if not lo <= value <= hi:
            raise ValueError(text)
        return value

    return read


def one_of(*names: str) -> Callable[[str], str]:
    def read(text: str) -> str:
        if text not in names:
            raise ValueError(text)
        return text

    return read


def _model(text: str) -> Spec:
    return parse("model", text)


def _regex(text: str) -> str:
    import re

    try:
        re.compile(text)
    except re.error:
        raise ValueError(text) from None
    return text


@dataclass(frozen=True)
class Family:
    """One spec family: its kinds (each with an argument rule, or None for no argument)."""

    name: str
    kinds: Mapping[str, Arg | None]
    separator: str = ":"

    def usage(self) -> str:
        shown = []
        for kind, arg in self.kinds.items():
            if arg is None:
                shown.append(kind)
            elif arg.optional:
                shown.append(f"{kind}[{self.separator}{arg.name}]")
            else:
                shown.append(f"{kind}{self.separator}{arg.name}")
        return ", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else shown[0]


MODEL_SPEC = Arg("SPEC", _model, "a model spec such as llamacpp/smollm2")
MAX_SMOOTHLLM_COPIES = 32  # a stated cap: N perturbed copies cost N generations per prompt
MAX_ROUNDS = 20

FAMILIES: dict[str, Family] = {
    "model": Family(
        "model",
        {
            "llamacpp": Arg("NAME", str, "smollm2 or a path to a .gguf file"),
            "hf": Arg("NAME", str, "a hub id, a local path or smollm2"),
            "openai": Arg("MODEL", str, "the server's model name (with --base-url)"),
            "scripted": None,
        },
        separator="/",
    ),
    "check": Family(
        "check",
        {
            "self": None,
            "verdict": None,
            "oracle": Arg("P", number(0.0, 1.0), "a number in [0, 1]"),
            "model": MODEL_SPEC,
            "none": None,
        },
    ),
    "defense": Family(
        "defense",
        {
            "none": None,
            "reminder": Arg("user", one_of("user"), "user (the reminder after the request)", True),
            "icd": Arg("N", whole(1, 3), "a whole number from 1 to 3"),
            "cac": Arg("R", whole(1, MAX_ROUNDS), f"a whole number from 1 to {MAX_ROUNDS}"),
            "cac-history": Arg("R", whole(1, 2), "a whole number from 1 to 2"),
            "smoothllm": Arg(
                "N",
                whole(1, MAX_SMOOTHLLM_COPIES),
                f"a whole number from 1 to {MAX_SMOOTHLLM_COPIES}",
            ),
        },
    ),
    "judge": Family(
        "judge",
        {
            "refusal": None,
            "refusal-extended": None,
            "paper": None,
            "llm": MODEL_SPEC,
            "harmbench": MODEL_SPEC,
            "jbb": MODEL_SPEC,
            "strongreject": MODEL_SPEC,
        },
    ),
    "over-refusal": Family("over-refusal", {"xstest-strings": None, "xstest": MODEL_SPEC}),
    "scorer": Family(
        "scorer",
        {
            "exact": None,
            "numeric": None,
            "choice": None,
            "regex": Arg("PATTERN", _regex, "a valid Python regular expression"),
            "llm": MODEL_SPEC,
        },
    ),
    "attack": Family(
        "attack",
        {
            "none": None,
            "transfer": Arg(
                "NAME", one_of("vicuna", "llama", "official"), "vicuna, llama or official"
            ),
            "gcg": None,
            "autodan": None,
        },
    ),
}


def parse(family: str, text: str | Spec) -> Spec:
    """Parse `text` as a spec of `family`; a `Spec` of that family is returned unchanged.

    Raises `SpecError` with the family's usage for an unknown kind, or the argument's rule for
    a bad argument.
    """
    fam = FAMILIES[family]
    if isinstance(text, Spec):
        if text.family != family:
            raise SpecError(f"expected a {family} spec, got the {text.family} spec {text}")
        return text
    if not isinstance(text, str):
        raise SpecError(f"{family} spec must be text, got {type(text).__name__}")
    raw = text.strip()
    kind, sep, arg = raw.partition(fam.separator)
    if kind not in fam.kinds:
        raise SpecError(f"unknown {family} {raw!r}: use {fam.usage()}")
    rule = fam.kinds[kind]
    if rule is None:
        if sep:
            raise SpecError(f"{family} {raw!r}: {kind} takes no argument; use {fam.usage()}")
        return Spec(family, kind)
    if not sep or not arg:
        if rule.optional and not sep:
            return Spec(family, kind)
        raise SpecError(f"{family} {raw!r}: {kind} needs {fam.separator}{rule.name} ({rule.rule})")
    try:
        value = rule.parse(arg)
    except SpecError as exc:
        raise SpecError(f"{family} {raw!r}: {exc}") from None
    except ValueError:
        raise SpecError(f"{family} {raw!r}: {rule.name} must be {rule.rule}") from None
    return Spec(family, kind, arg, value)


def served_options(spec: Spec, base_url: str | None) -> dict[str, Any]:
    """Backend options of a judge model (the model of a ``model:SPEC`` check or an ``llm:SPEC``
    scorer): one served by an OpenAI-compatible server shares the study's `base_url`; any other
    (local, scripted) takes none, as it would refuse a URL."""
    served = bool(base_url) and isinstance(spec.value, Spec) and spec.value.kind == "openai"
    return {"base_url": base_url} if served else {}


def plain(obj: Any) -> Any:
    """A config (dataclasses, specs, tuples) as plain YAML/JSON data; specs become their text."""
    if isinstance(obj, Spec):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
