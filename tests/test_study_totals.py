"""Token totals in a study's metrics count every model call and nothing else."""

from selfcorrect.cac.runner import token_totals


def turn(source: str, role: str = "assistant", n: int = 1) -> dict:
    return {
        "role": role,
        "source": source,
        "prompt_tokens": 10 * n,
        "completion_tokens": n,
        "cached_tokens": 0,
        "seconds": 0.5,
    }


def test_answerer_and_checker_models_count_templates_demos_context_and_oracles_do_not():
    records = [
        {
            "turns": [
                turn("template", role="user"),
                turn("model", n=2),
                turn("checker:llamacpp/smollm2", n=3),
                turn("oracle"),
                turn("demo"),
                turn("context"),
                turn("rule"),
            ]
        },
        {"turns": [turn("model", n=4)]},
    ]
    totals = token_totals(records)
    assert totals["completion_tokens"] == 2 + 3 + 4
    assert totals["prompt_tokens"] == 90 and totals["request_seconds"] == 1.5
