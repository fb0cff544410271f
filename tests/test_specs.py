"""Every spec family parses in one place with one error format."""

from __future__ import annotations

import pytest

from selfcorrect.specs import FAMILIES, Spec, SpecError, parse, plain


def test_parsed_specs_carry_kind_argument_and_value():
    spec = parse("check", "oracle:0.25")
    assert (spec.kind, spec.arg, spec.value, str(spec)) == ("oracle", "0.25", 0.25, "oracle:0.25")
    checker = parse("check", "model:openai/gpt-x")
    assert checker.value == Spec("model", "openai", "gpt-x", "gpt-x")
    assert parse("model", "llamacpp/smollm2").kind == "llamacpp"
    assert (
        parse("defense", "cac:2").value == 2
        and parse("attack", "transfer:vicuna").value == "vicuna"
    )
    assert parse("check", spec) is spec  # already parsed: unchanged


@pytest.mark.parametrize(
    "family, text, message",
    [
        ("check", "x", "unknown check 'x': use self, verdict, oracle:P, model:SPEC or none"),
        ("check", "oracle:2", "check 'oracle:2': P must be a number in [0, 1]"),
        ("check", "oracle", "check 'oracle': oracle needs :P (a number in [0, 1])"),
        ("check", "self:1", "check 'self:1': self takes no argument"),
        ("check", "model:wat/x", "check 'model:wat/x': unknown model 'wat/x'"),
        (
            "model",
            "gpt4",
            "unknown model 'gpt4': use llamacpp/NAME, hf/NAME, openai/MODEL or scripted",
        ),
        ("defense", "smoothllm:0", "defense 'smoothllm:0': N must be a whole number from 1 to 32"),
        ("judge", "llm:", "judge 'llm:': llm needs :SPEC"),
        (
            "attack",
            "transfer:nope",
            "attack 'transfer:nope': NAME must be vicuna, llama or official",
        ),
    ],
)
def test_one_error_format_for_every_family(family, text, message):
    with pytest.raises(SpecError) as info:
        parse(family, text)
    assert str(info.value).startswith(message)


def test_a_spec_of_another_family_is_refused_and_plain_writes_text():
    with pytest.raises(SpecError, match="expected a check spec"):
        parse("check", parse("defense", "none"))
    assert plain({"c": parse("check", "oracle:0.5"), "t": (1, 2)}) == {
        "c": "oracle:0.5",
        "t": [1, 2],
    }
    assert set(FAMILIES) == {
        "model",
        "check",
        "defense",
        "judge",
        "over-refusal",
        "attack",
        "scorer",
    }
