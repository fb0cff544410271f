"""The task study: any question set -> prompts -> CaC engine -> scorer -> metrics -> run directory.

`TaskConfig.stop` says when a conversation ends:

- ``never``: all `rounds` rounds, the last answer is final (with a self, verdict or model check
  this is *intrinsic* self-correction, Huang et al. 2024);
- ``oracle``: stop as soon as the ground truth says the latest answer is right, keeping it
  (Huang et al.'s *oracle-stopped* setting; the model still sees only the check's text; see
  `selfcorrect.cac.checks.OracleStopCheck`);
- ``check``: stop as soon as the check passes the answer (``first_accepted``).

The conversation never carries the gold answer: only an oracle check, or the oracle stop, is
given it (through the scorer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from selfcorrect.backends.base import Backend, GenParams, describe_backend, get_backend
from selfcorrect.cac.checks import Check, CheckSettings, OracleStopCheck, make_check
from selfcorrect.cac.conversation import Conversation, Turn
from selfcorrect.cac.engine import CaCConfig
from selfcorrect.cac.runner import finish_study, run_samples, token_totals
from selfcorrect.fill import fill
from selfcorrect.runs import RunDir
from selfcorrect.specs import Spec, parse, plain, served_options
from selfcorrect.tasks import prompts as P
from selfcorrect.tasks.checks import review_verdict
from selfcorrect.tasks.data import BUILTIN, Fields, TaskItem, load_task
from selfcorrect.tasks.metrics import compute_metrics
from selfcorrect.tasks.scorers import KINDS, Scorer, make_scorer, strip_cue

Stop = Literal["never", "oracle", "check"]
STOPS = ("never", "oracle", "check")
DEFAULT_SCORERS = {"gsm8k": "numeric", "csqa": "choice"}


@dataclass(frozen=True)
class TaskConfig:
    """One task run. `data` is ``gsm8k``, ``csqa`` or a JSONL path read with the ``*_field``
    names (dotted names read nested fields); `scorer` defaults to ``numeric`` for gsm8k and
    ``choice`` for csqa and is required for a file; `limit` takes a seeded sample."""

    model: str = "llamacpp/smollm2"
    data: str = "gsm8k"
    question_field: str = "question"
    answer_field: str = "answer"
    choices_field: str | None = None
    id_field: str | None = None
    scorer: Spec | str | None = None
    check: Spec | str = "self"
    rounds: int = 1
    stop: Stop = "never"
    prompt: str = "direct"
    limit: int | None = None
    answer_tokens: int = 256
    check_tokens: int = 256
    reanswer_tokens: int | None = None  # None: answer_tokens
    followup_tokens: int = 16
    batch_size: int = 16
    seed: int = 0
    base_url: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse("model", self.model)
        scorer = self.scorer or DEFAULT_SCORERS.get(self.data)
        if scorer is None:
            raise ValueError("--scorer is required for a JSONL file (exact, numeric, choice, ...)")
        object.__setattr__(self, "scorer", parse("scorer", scorer))
        object.__setattr__(self, "check", parse("check", self.check))
        if self.data not in BUILTIN and not Path(self.data).suffix:
            raise ValueError(
                f"--data must be {' or '.join(BUILTIN)} or a .jsonl file, got {self.data!r}"
            )
        if self.kind == "choice" and self.data not in BUILTIN and not self.choices_field:
            raise ValueError("--scorer choice needs --choices-field (the options of each question)")
        if self.prompt not in P.STYLES:
            raise ValueError(f"unknown prompt style {self.prompt!r}; use {' or '.join(P.STYLES)}")
        if self.stop not in STOPS:
            raise ValueError(f"unknown stop rule {self.stop!r}; use {', '.join(STOPS)}")
        if self.stop == "oracle" and self.check_spec.kind in ("none", "oracle"):
            raise ValueError(
                "--stop oracle needs a check whose text the model reads (self, verdict or "
                "model:SPEC); for the oracle's verdict in context use --check oracle:0 --stop check"
            )
        if self.rounds < 0:
            raise ValueError(f"rounds must be >= 0, got {self.rounds}")
        for name in ("answer_tokens", "check_tokens", "reanswer_tokens", "followup_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name.replace('_', '-')} must be >= 1, got {value}")

    @property
    def scorer_spec(self) -> Spec:
        assert isinstance(self.scorer, Spec)
        return self.scorer

    @property
    def check_spec(self) -> Spec:
        assert isinstance(self.check, Spec)
        return self.check

    @property
    def kind(self) -> str:
        return KINDS[self.scorer_spec.kind]

    @property
    def fields(self) -> Fields:
        return Fields(self.question_field, self.answer_field, self.choices_field, self.id_field)


def question_text(item: TaskItem, style: str, kind: str) -> str:
    """The first user turn: the question (with its lettered options) in the prompt style."""
    question = item.question
    if item.choices:
        options = "\n".join(f"({label}) {text}" for label, text in zip(item.labels, item.choices))
        question = fill(P.CHOICE_QUESTION, question=question, options=options)
    if style == "cot":
        return fill(P.COT_TEMPLATE, question=question)
    return fill(P.DIRECT_TEMPLATE, question=question, format=P.FORMAT[kind])


def cac_config(cfg: TaskConfig) -> CaCConfig:
    """Answers start with the answer cue (direct), or reason first and then answer a follow-up
    that starts with it (cot); the re-ask is Huang et al.'s "improve your answer" with the
    task's answer format."""
    fmt = P.FORMAT[cfg.kind]
    reanswer_tokens = cfg.reanswer_tokens or cfg.answer_tokens
    cue = P.ANSWER_CUE if cfg.prompt == "direct" else ""
    return CaCConfig(
        rounds=cfg.rounds,
        reask_template=fill(P.REASK_TEMPLATE, format=fmt),
        answer=GenParams(max_new_tokens=cfg.answer_tokens, prefill=cue, seed=cfg.seed),
        reanswer=GenParams(max_new_tokens=reanswer_tokens, prefill=cue, seed=cfg.seed),
        final_policy="last" if cfg.stop == "never" else "first_accepted",
        followup=fill(P.COT_FOLLOWUP, format=fmt) if cfg.prompt == "cot" else None,
        followup_params=GenParams(
            max_new_tokens=cfg.followup_tokens, prefill=P.ANSWER_CUE, seed=cfg.seed
        ),
    )


def make_task_check(cfg: TaskConfig, items: list[TaskItem], scorer: Scorer) -> Check | None:
    """The run's check; the ground truth reaches only an oracle check or the oracle stop,
    through `scorer` and the answer key of `items`."""
    key = {item.id: item for item in items}

    def is_correct(conv: Conversation, answer_text: str) -> bool:
        return scorer.score([(strip_cue(answer_text), key[conv.id])])[0].correct

    settings = CheckSettings(
        prompt=P.REVIEW_PROMPT,
        verdict_prompt=P.VERDICT_PROMPT,
        review_parser=review_verdict,
        params=GenParams(max_new_tokens=cfg.check_tokens, seed=cfg.seed),
        checker_options=served_options(cfg.check_spec, cfg.base_url),
    )
    check = make_check(
        cfg.check_spec if cfg.rounds else "none", settings, is_correct=is_correct, seed=cfg.seed
    )
    if cfg.stop == "oracle" and check is not None:
        return OracleStopCheck(review=check, is_correct=is_correct)
    return check


def _generated(turns: list[Turn], r: int) -> dict[str, int]:
    """Tokens generated in round r: by the answering model (answers, reasoning) and by checks."""
    answer = check = 0
    for t in turns:
        if t.round != r or t.role != "assistant":
            continue
        if t.kind == "check":
            check += t.completion_tokens
        elif t.source == "model":
            answer += t.completion_tokens
    return {"answer": answer, "check": check}


def make_record(item: TaskItem, conv: Conversation, scorer: Scorer) -> dict[str, Any]:
    """One records.jsonl line: the question and gold answer, each answer with what the scorer
    read and whether it is right, each check with its verdict, generated tokens per round,
    where the conversation stopped, and every turn."""
    answers = conv.answers()
    scores = scorer.score([(strip_cue(t.content), item) for t in answers])
    last_round = max((t.round for t in conv.turns), default=0)
    return {
        "id": item.id,
        "question": item.question,
        "answer": item.answer,
        "choices": list(item.choices),
        "labels": list(item.labels),
        "rounds": [
            {
                "round": t.round,
                "answer_text": t.content,
                "extracted": s.extracted,
                "correct": s.correct,
            }
            for t, s in zip(answers, scores, strict=True)
        ],
        "checks": [
            {"round": t.round, "verdict": t.verdict, "source": t.source, "text": t.content}
            for t in conv.checks()
        ],
        "tokens": [_generated(conv.turns, r) for r in range(last_round + 1)],
        "stopped_at": conv.stopped_at,
        "turns": [t.to_dict() for t in conv.turns],
    }


def load_items(cfg: TaskConfig) -> tuple[list[TaskItem], list[str]]:
    """The run's questions and the data rows that could not be used (as "file:line: why")."""
    items, problems = load_task(
        cfg.data, cfg.fields, KINDS[cfg.scorer_spec.kind], limit=cfg.limit, seed=cfg.seed
    )
    if not items:
        raise ValueError(
            f"no usable questions in {cfg.data}" + (f" ({problems[0]})" if problems else "")
        )
    return items, [str(p) for p in problems]


def run_inputs(cfg: TaskConfig) -> dict[str, Any]:
    """What the configuration only names, for the run's fingerprint: the data file, the model
    (and checker) file or server, and an LLM grader's."""
    from selfcorrect.datafiles import vendored
    from selfcorrect.fingerprint import backend_inputs, effective_base_url, model_file

    files = {"gsm8k": ("gsm8k", "test.jsonl"), "csqa": ("commonsenseqa", "dev_rand_split.jsonl")}
    data = vendored(*files[cfg.data]) if cfg.data in files else Path(cfg.data)
    inputs = {"data": data, **backend_inputs(cfg.model, cfg.base_url, check=cfg.check)}
    if cfg.scorer_spec.kind == "llm":
        inputs["grader_model_file"] = model_file(cfg.scorer_spec.value)
        inputs["grader_base_url"] = effective_base_url(cfg.scorer_spec.value, cfg.base_url)
    return inputs


def make_backends(cfg: TaskConfig, backend: Backend | None) -> tuple[Backend, Scorer]:
    """The answering model and the scorer (an llm grader that names the answering model
    shares its backend)."""
    options = {"base_url": cfg.base_url, **cfg.backend_options}
    spec = cfg.scorer_spec
    if spec.kind == "llm" and str(spec.value) == cfg.model:
        backend = backend or get_backend(cfg.model, **options)
        from selfcorrect.tasks.scorers import LLMScorer

        return backend, LLMScorer(backend)
    scorer = make_scorer(spec, **served_options(spec, cfg.base_url))
    return backend or get_backend(cfg.model, **options), scorer


def run_task(
    cfg: TaskConfig,
    out: str | Path,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    plots: bool = True,
    fail_fast: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the task study into `out`; returns metrics.json's content."""
    items, problems = load_items(cfg)
    backend, scorer = make_backends(cfg, backend)
    check = make_task_check(cfg, items, scorer)
    run = RunDir.open(
        out,
        study="task",
        config=plain(cfg),
        model=cfg.model,
        seed=cfg.seed,
        inputs=run_inputs(cfg),
    )
    run.note(backend=describe_backend(backend))
    counts = run_samples(
        run,
        items,
        sample_id=lambda item: item.id,
        conversation=lambda item: Conversation(
            id=item.id, question=question_text(item, cfg.prompt, cfg.kind)
        ),
        record=lambda item, conv: make_record(item, conv, scorer),
        backend=backend,
        check=check,
        config=cac_config(cfg),
        window=cfg.batch_size,
        progress=progress,
        fail_fast=fail_fast,
    )
    wanted = {item.id for item in items}
    records = [r for r in run.records() if r["id"] in wanted]
    metrics = compute_metrics(records, cfg.rounds)
    metrics.update(
        stop=cfg.stop,
        check=str(cfg.check),
        scorer=str(cfg.scorer),
        data_problems=problems,
        failed=len(wanted) - len(records),
        tokens=token_totals(records),
        wall_seconds=round(counts.wall_seconds, 3),
    )
    return finish_study(run, metrics, counts, report=plots and bool(records))
