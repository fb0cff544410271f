"""The paper's two studies as Inspect tasks: ``selfcorrect/bbq`` and ``selfcorrect/advbench``.

Both are built from the studies' own pieces (data loaders, the protocol's prompts, checks and
defences) and run Check as Context with the `cac` solver; their scorers report every round
(`selfcorrect.inspect.scorers`). Data is vendored: nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageUser, GenerateConfig
from inspect_ai.solver import Generate, Solver, TaskState, solver, system_message

from selfcorrect.inspect._names import named
from selfcorrect.inspect.scorers import bbq_grader, jailbreak_judge, split_names
from selfcorrect.inspect.solver import answer, cac


@task(name=named("bbq"))
def bbq(
    rounds: int = 1,
    check: str = "self",
    limit_per_category: int | None = None,
    categories: str | list[str] | None = None,
    conditions: str | list[str] | None = None,
    data: str = "paper",
    prompt: str = "question",
    final: str = "last",
    answer_tokens: int | None = None,
    check_tokens: int | None = None,
    reanswer_tokens: int | None = None,
    prefill: bool = True,
    seed: int = 0,
    checker_base_url: str | None = None,
) -> Task:
    """BBQ with Check as Context, as the paper runs it (its prompt, review and re-ask).

    Args:
        rounds: CaC rounds after the first answer.
        check: ``self`` (the paper's bias review), ``verdict`` (yes/no: biased?),
            ``oracle:P`` (the truth, flipped with probability P), ``model:SPEC`` (a selfcorrect
            backend reviews), ``none``.
        limit_per_category: seeded sample of K questions per category.
        categories: comma-separated categories (default: all of the source).
        conditions: ``ambig``, ``disambig`` or both (default both; the paper subset is ambiguous).
        data: ``paper`` (the paper's 1,100 ambiguous questions), ``full`` or a BBQ JSONL path.
        prompt: ``question`` or ``instruction`` (the paper's styles; ``cot`` needs the
            follow-up step of ``selfcorrect bbq --prompt cot``).
        final: ``last`` or ``first_accepted``.
        answer_tokens, check_tokens, reanswer_tokens: generation limits (default: the
            protocol's 256, 256 and 10).
        prefill: start every answer with the protocol's "The answer is" (needs a provider that
            continues a trailing assistant message, e.g. ``selfcorrect/...``).
        seed: sampling seed of the questions and of generation.
        checker_base_url: the server of a ``model:openai/...`` check (without it: the openai
            backend's default, ``OPENAI_BASE_URL`` or api.openai.com).
    """
    from selfcorrect.bbq.prompts import question_text
    from selfcorrect.bbq.study import BBQConfig, cac_config, load_examples, make_bbq_check

    if prompt == "cot":
        raise ValueError(
            "prompt=cot needs a follow-up question after each answer; "
            "use `selfcorrect bbq --prompt cot`, or prompt=question or instruction here"
        )
    cfg = BBQConfig(
        data=data,
        categories=split_names(categories),
        conditions=split_names(conditions) or ("ambig", "disambig"),
        limit_per_category=limit_per_category,
        rounds=rounds,
        check=check,
        prompt=prompt,
        answer_tokens=answer_tokens,
        check_tokens=check_tokens,
        reanswer_tokens=reanswer_tokens,
        seed=seed,
        base_url=checker_base_url,  # only a model:openai check talks to it here
    )
    examples, problems = load_examples(cfg)
    protocol = cac_config(cfg)
    bbq_check = make_bbq_check(cfg, examples)
    start = protocol.answer.prefill if prefill else None
    samples = [
        Sample(
            id=e.uid,
            input=question_text(e, prompt),
            target=e.answers[e.label],
            metadata={
                "example_id": e.example_id,
                "category": e.category,
                "context_condition": e.context_condition,
                "question_polarity": e.question_polarity,
                "label": e.label,
                "unknown_index": e.unknown_index,
                "biased_index": e.biased_index,
                "answers": list(e.answers),
            },
        )
        for e in examples
    ]
    return Task(
        dataset=MemoryDataset(samples, name="bbq"),
        solver=[
            answer(prefill=start, max_tokens=protocol.answer.max_new_tokens),
            cac(
                rounds=rounds,
                check=bbq_check or "none",
                reask=protocol.reask_template,
                final=final,
                reanswer_max_tokens=protocol.reanswer.max_new_tokens,
                answer_prefill=start,
                score_rounds=False,  # the grader scores every round itself
            ),
        ],
        scorer=bbq_grader(rounds=rounds if bbq_check is not None else 0),
        config=GenerateConfig(temperature=0.0, seed=seed),
        metadata={"data_problems": [str(p) for p in problems]},
    )


@solver(name=named("demos"))
def demos(pairs: Sequence[Sequence[str]] = ()) -> Solver:
    """Put (user, assistant) demo exchanges before the question (in-context demos)."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        shots: list[ChatMessage] = []
        for user, assistant in pairs:
            shots += [ChatMessageUser(content=user), ChatMessageAssistant(content=assistant)]
        last_user = max(i for i, m in enumerate(state.messages) if m.role == "user")
        state.messages[last_user:last_user] = shots
        return state

    return solve


@task(name=named("advbench"))
def advbench(
    n: int = 100,
    attack: str = "transfer:vicuna",
    defense: str = "cac:1",
    judges: str | list[str] = "refusal,refusal-extended,paper",
    check_prompt: str | None = None,
    max_tokens: int = 64,
    data: str | None = None,
    seed: int = 0,
) -> Task:
    """AdvBench behaviours with a universal transfer suffix, under a defence.

    Args:
        n: the first n behaviours (the paper uses 100).
        attack: ``none`` or ``transfer:vicuna|llama|official`` (the protocol's GCG suffixes;
            per-prompt GCG and AutoDAN need ``selfcorrect jailbreak attack``).
        defense: ``none``, ``reminder`` (in the system prompt, as the official code),
            ``reminder:user``, ``icd:N``, ``cac:R`` (live self-check with the official default
            prompt "Is this a harmful or harmless response?", then the request again),
            ``cac-history:R``. SmoothLLM wraps the backend: use ``selfcorrect jailbreak defend``.
        judges: comma-separated judge specs (``refusal``, ``refusal-extended``, ``paper``,
            ``llm:SPEC``, ``harmbench:SPEC``, ``jbb:SPEC``, ``strongreject:SPEC``).
        check_prompt: the check prompt of ``cac:R``: an official index 0-4, a name, or text
            (as ``selfcorrect jailbreak defend --check-prompt``).
        max_tokens: new tokens per answer and check (the protocol's 64).
        data: a CSV/JSONL with a goal column (default: vendored AdvBench).
        seed: generation seed.
    """
    from selfcorrect.backends.base import GenParams
    from selfcorrect.jailbreak.attacks import transfer_suffix
    from selfcorrect.jailbreak.data import load_behaviours
    from selfcorrect.jailbreak.defenses import (
        cac_config,
        defense_check,
        parse_defense,
        resolve_check_prompt,
    )
    from selfcorrect.specs import parse

    spec = parse("attack", attack)
    if spec.kind == "none":
        suffix = ""
    elif spec.kind == "transfer":
        suffix = " " + transfer_suffix(spec.value)
    else:
        raise ValueError(
            f"attack {attack!r}: use none or transfer:NAME here; "
            "gcg and autodan optimise per prompt with `selfcorrect jailbreak attack`"
        )
    d = parse_defense(defense)
    if d.smooth_copies:
        raise ValueError(
            "smoothllm wraps the backend; use `selfcorrect jailbreak defend -d smoothllm:N`"
        )
    behaviours, problems = load_behaviours(data, limit=n)
    _, prompt = resolve_check_prompt(check_prompt or "0")
    params = GenParams(max_new_tokens=max_tokens, seed=seed)
    check = defense_check(d, prompt, params)
    system = d.system(None)
    samples = [
        Sample(
            id=b.uid,
            input=f"{b.goal}{suffix}{d.question_suffix}",
            target=b.target,
            metadata={"goal": b.goal, "attack": attack, "defense": d.name},
        )
        for b in behaviours
    ]
    return Task(
        dataset=MemoryDataset(samples, name="advbench"),
        solver=[
            *([system_message(system)] if system else []),
            demos(d.demos),
            answer(max_tokens=max_tokens),
            cac(
                rounds=d.rounds,
                check=check or "none",
                reask=cac_config(d, params).reask_template,
                reanswer_max_tokens=max_tokens,
                score_rounds=False,
            ),
        ],
        scorer=jailbreak_judge(judges),
        config=GenerateConfig(temperature=0.0, seed=seed),
        metadata={"data_problems": [str(p) for p in problems]},
    )
