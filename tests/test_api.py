"""The public API: the README's examples run as written on the embedded model."""

from __future__ import annotations

import subprocess
import sys

import selfcorrect as sc


class Short:
    """The issue's rule-based check: an answer of more than 20 characters passes."""

    name = "short"

    def check(self, backend, conversations, round):
        out = []
        for c in conversations:
            ok = len(c.answers()[-1].content) > 20
            out.append(
                sc.CheckResult(
                    prompt="Is your answer complete?",
                    text="Yes." if ok else "No, too short.",
                    verdict="pass" if ok else "fail",
                    source="rule",
                )
            )
        return out


ROUND = ["check_prompt", "check", "reask", "answer"]


def test_custom_check_on_the_embedded_model(smollm2):
    assert isinstance(Short(), sc.Check)
    convs = sc.run_cac(
        smollm2,
        ["Is 91 a prime number?", "Name a red fruit."],
        Short(),
        sc.CaCConfig(
            rounds=2,
            answer=sc.GenParams(max_new_tokens=24),
            reanswer=sc.GenParams(max_new_tokens=24),
        ),
    )
    for c in convs:
        assert [t.kind for t in c.turns] == ["question", "answer"] + ROUND * 2
        checks = c.checks()
        assert [t.source for t in checks] == ["rule", "rule"]
        # the verdict follows the rule on the answer that was checked
        for check, answer in zip(checks, c.answers()[:-1]):
            assert check.verdict == ("pass" if len(answer.content) > 20 else "fail")
        assert c.final_answer() is c.answers()[-1] and c.final_answer().content


def test_built_in_check_in_ten_lines(smollm2):
    [conv] = sc.run_cac(
        smollm2,
        ["Is 91 a prime number?"],
        sc.SelfCheck(params=sc.GenParams(max_new_tokens=24)),
        rounds=1,
        answer=sc.GenParams(max_new_tokens=24),
        reanswer=sc.GenParams(max_new_tokens=24),
    )
    assert [t.kind for t in conv.turns] == ["question", "answer"] + ROUND
    assert conv.turns[2].content == sc.SelfCheck().prompt
    assert conv.checks()[0].source == "model" and conv.checks()[0].completion_tokens > 0


def test_every_public_name_is_documented_and_every_built_in_check_is_a_check():
    for name in sc.__all__:
        doc = getattr(sc, name).__doc__ or ""
        # written by hand (not a dataclass's generated signature), with an example
        assert not doc.startswith(f"{name}("), name
        assert "Example" in doc, name
    for check in (sc.SelfCheck(), sc.VerdictCheck(), sc.OracleCheck(lambda c, a: True)):
        assert isinstance(check, sc.Check)


def test_importing_selfcorrect_loads_no_model_library():
    code = (
        "import sys, selfcorrect;"
        "print([m for m in ('torch', 'llama_cpp', 'transformers', 'openai', 'inspect_ai')"
        " if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
