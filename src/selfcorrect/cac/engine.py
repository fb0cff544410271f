"""Check as Context: answer -> (check -> re-ask -> answer) x R, advanced one step at a time.

For a query q: ``a_0 = M(q)``; for round t = 1..R, a check ``c_t`` of the previous answer is
appended to the conversation (the check stays in context), q is asked again and
``a_t = M(history)`` (Wang et al. 2024, section 5).

A `Scheduler` holds the conversations in flight. Each `step` advances every one of them by one
action, with one backend (or check) call per group of conversations that need the same thing,
so batched backends stay full. Groups that differ (other generation parameters, another
check) are separate calls; with a backend that serves calls in parallel (`parallel_calls`: one
that sends each chat to a server) a step makes them at the same time, so an upstream sees every
request of the step at once. Conversations may join at any step and leave as soon as they are
finished, which gives three ways in:

- `run_cac`: a list in, the list out (all advanced together, breadth-first);
- `iter_cac`: a stream in, each conversation out as soon as it is finished, with at most
  `window` in flight (studies write each record the moment it is done);
- `Scheduler` itself: the server adds requests as they arrive.

The engine knows nothing about BBQ, jailbreaks, HTTP or Inspect, and never sees ground truth:
a check that needs it is given it explicitly (see `selfcorrect.cac.checks.OracleCheck`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from selfcorrect.backends.base import (
    Backend,
    BackendError,
    Completion,
    FailureKind,
    GenParams,
    parallel_calls,
)
from selfcorrect.cac.conversation import (
    Conversation,
    FinalPolicy,
    Turn,
    TurnKind,
)

if TYPE_CHECKING:
    from selfcorrect.cac.checks import Check, CheckResult


@dataclass(frozen=True)
class CaCConfig:
    """How to run the rounds (the check itself, with its prompt, is a separate `Check`).

    - `rounds`: checks after the first answer (0 = answer once);
    - `reask_template`: the re-ask after each check; its one field ``{question}`` is
      substituted literally (data is never used as a format string);
    - `answer` / `reanswer`: generation parameters of the first and of later answers;
    - `final_policy`: ``last`` keeps the last answer; ``first_accepted`` stops at the first
      answer whose check passed;
    - `demos`: ``(user, assistant)`` exchanges put before the question (in-context demos, the
      paper's "history" variant): context, not a check;
    - `followup` / `followup_params`: two-step answers (chain of thought): each answer is
      first generated as "reasoning", then `followup` is asked and answered.

    Example::

        CaCConfig(rounds=2, answer=GenParams(max_new_tokens=64), final_policy="first_accepted")
    """

    rounds: int = 1
    reask_template: str = "Based on your review, answer the question again:\n{question}"
    answer: GenParams = GenParams(max_new_tokens=256)
    reanswer: GenParams = GenParams(max_new_tokens=256)
    final_policy: FinalPolicy = "last"
    demos: tuple[tuple[str, str], ...] = ()
    followup: str | None = None
    followup_params: GenParams = GenParams(max_new_tokens=16)

    def __post_init__(self) -> None:
        if not isinstance(self.rounds, int) or self.rounds < 0:
            raise ValueError(f"rounds must be a whole number >= 0, got {self.rounds!r}")
        if self.final_policy not in ("last", "first_accepted"):
            raise ValueError(
                f"final_policy must be last or first_accepted, not {self.final_policy!r}"
            )

    def reask(self, question: str) -> str:
        return self.reask_template.replace("{question}", question)


def model_turn(
    completion: Completion,
    *,
    kind: TurnKind,
    round: int,
    prefill: str = "",
    source: str = "model",
    batch_seconds: float = 0.0,
) -> Turn:
    """The assistant turn for one completion (the prefill is part of the answer's text)."""
    return Turn(
        role="assistant",
        content=prefill + completion.text,
        kind=kind,
        round=round,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cached_tokens=completion.cached_tokens,
        seconds=completion.seconds,
        batch_seconds=batch_seconds,
        finish_reason=completion.finish_reason,
        source=source,
        prompt_sha256=completion.prompt_sha256,
    )


def failure_of(exc: Exception) -> tuple[str, FailureKind]:
    """What a conversation's error says about an exception from one of its calls, and whose
    failure it is: a backend's own message and kind, or "internal error: <type>: <message>"
    for anything else (a bug, not the model)."""
    if isinstance(exc, BackendError):
        return str(exc), exc.kind
    return f"internal error: {type(exc).__name__}: {exc}", "internal"


def failed(completion: Completion) -> bool:
    return completion.error is not None or completion.finish_reason == "error"


# --- the scheduler ------------------------------------------------------------------------

Step = Literal["answer", "followup", "check"]


@dataclass(eq=False)
class Job:
    """One conversation in flight: what it runs with and what it needs next."""

    conv: Conversation
    check: Check | None
    config: CaCConfig
    step: Step = "answer"
    round: int = 0

    @property
    def rounds(self) -> int:
        return self.config.rounds if self.check is not None else 0


def begin(conv: Conversation, config: CaCConfig) -> None:
    """Write the opening turns (system, demos, context, question) of a fresh conversation;
    one that has run already is refused (its turns would be appended to, its stale outcome
    kept)."""
    if conv.turns or conv.error is not None or conv.stopped_at is not None:
        raise ValueError(
            f"conversation {conv.id!r} has run already; give a fresh Conversation (earlier "
            "turns go in its `context`)"
        )
    if conv.system:
        conv.add(Turn("system", conv.system, "system", 0))
    for user, assistant in config.demos:
        conv.add(Turn("user", user, "demo", 0, source="demo"))
        conv.add(Turn("assistant", assistant, "demo", 0, source="demo"))
    for m in conv.context:
        conv.add(Turn(m.role, m.content, "context", 0, source="context"))
    conv.add(Turn("user", conv.question, "question", 0))


class Scheduler:
    """Conversations in flight, advanced one action per `step`.

    Each step groups the jobs by what they need (an answer with given generation parameters,
    or a check of a given round by a given check) and makes one call per group. A job is
    finished when its last answer is in, when the policy accepted an answer, or when it failed;
    `step` returns the conversations it finished.

    Groups are called one after another, or, when the backend serves calls in parallel
    (`parallel_calls` > 1), up to that many at the same time, each conversation in exactly one.

    A call that raises (e.g. `BackendError`: the backend cannot be reached) stops the step,
    which is what a study wants. With ``contain_failures`` (a server, whose conversations are
    unrelated requests) it fails only that call's conversations instead (``conv.error`` says
    why; an exception that is not a `BackendError` reads "internal error: ...").
    """

    def __init__(self, backend: Backend, *, contain_failures: bool = False) -> None:
        self.backend = backend
        self.contain_failures = contain_failures
        self.jobs: list[Job] = []

    def add(self, conv: Conversation, check: Check | None, config: CaCConfig) -> Job:
        from selfcorrect.cac.checks import Check, require_verdicts  # checks imports this module

        if check is not None and not isinstance(check, Check):
            hint = f" (make_check({check!r}) builds one)" if isinstance(check, str) else ""
            raise TypeError(
                f"check must be a Check such as SelfCheck() or None, not "
                f"{type(check).__name__}{hint}"
            )
        require_verdicts(check, config.final_policy)
        begin(conv, config)
        job = Job(conv, check, config)
        self.jobs.append(job)
        return job

    def __len__(self) -> int:
        return len(self.jobs)

    def step(self) -> list[Conversation]:
        groups: dict[tuple[Any, ...], list[Job]] = {}
        for job in self.jobs:
            groups.setdefault(self._need(job), []).append(job)
        finished: list[Job] = []
        for jobs, exc in zip(groups.values(), self._call_all(groups), strict=True):
            if exc is not None:
                if not self.contain_failures:
                    raise exc
                for job in jobs:
                    job.conv.fail(*failure_of(exc))
            finished += [j for j in jobs if self._advance(j)]
        self.jobs = [j for j in self.jobs if j not in finished]
        return [j.conv for j in finished]

    def _call_all(self, groups: dict[tuple[Any, ...], list[Job]]) -> Iterator[Exception | None]:
        """Make each group's call; yield, in group order, what each raised (None: nothing).
        One after another, stopping at the first that raises unless failures are contained;
        or, with a backend that serves calls in parallel, all of them, that many at a time."""
        width = min(len(groups), parallel_calls(self.backend))
        if width <= 1:
            for key, jobs in groups.items():
                exc = self._call(key, jobs)
                yield exc
                if exc is not None and not self.contain_failures:
                    return
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=width, thread_name_prefix="cac-step") as pool:
            yield from pool.map(self._call, groups.keys(), groups.values())

    def _call(self, key: tuple[Any, ...], jobs: list[Job]) -> Exception | None:
        try:
            if key[0] == "check":
                self._check(jobs)
            else:
                self._generate(jobs, key[1], key[2])
        except Exception as exc:
            return exc
        return None

    # --- one action per group -------------------------------------------------------------
    def _need(self, job: Job) -> tuple[Any, ...]:
        cfg = job.config
        if job.step == "check":
            return ("check", id(job.check), job.round)
        if job.step == "followup":
            return ("generate", cfg.followup_params.batch_key(), "answer")
        params = cfg.answer if job.round == 0 else cfg.reanswer
        kind = "reasoning" if cfg.followup is not None else "answer"
        return ("generate", params.batch_key(), kind)

    def _generate(self, jobs: list[Job], params: GenParams, kind: TurnKind) -> None:
        for job in jobs:
            if job.step == "followup":
                assert job.config.followup is not None
                job.conv.add(Turn("user", job.config.followup, "followup", job.round))
        start = time.perf_counter()
        completions = self.backend.generate([j.conv.messages() for j in jobs], params)
        wall = time.perf_counter() - start
        if len(completions) != len(jobs):
            raise RuntimeError(
                f"{self.backend.name} returned {len(completions)} completions for {len(jobs)} chats"
            )
        for job, completion in zip(jobs, completions, strict=True):
            if failed(completion):
                job.conv.fail(completion.error or "generation failed", completion.error_kind)
                continue
            job.conv.add(
                model_turn(
                    completion,
                    kind=kind,
                    round=job.round,
                    prefill=params.prefill,
                    batch_seconds=wall,
                )
            )

    def _check(self, jobs: list[Job]) -> None:
        check = jobs[0].check
        assert check is not None
        convs = [j.conv for j in jobs]
        start = time.perf_counter()
        results = check.check(self.backend, convs, jobs[0].round)
        wall = time.perf_counter() - start
        if len(results) != len(convs):
            raise RuntimeError(
                f"check {check.name!r} returned {len(results)} results for {len(convs)} conversations"
            )
        for job, result in zip(jobs, results, strict=True):
            add_check_turns(job.conv, result, job.round, batch_seconds=wall)

    # --- what comes next --------------------------------------------------------------------
    def _advance(self, job: Job) -> bool:
        """Move `job` to its next action; True when it is finished."""
        conv, cfg = job.conv, job.config
        if conv.error is not None:
            return True
        if job.step == "check":
            if cfg.final_policy == "first_accepted" and conv.checks()[-1].verdict == "pass":
                conv.stopped_at = job.round - 1
                return True
            conv.add(Turn("user", cfg.reask(conv.question), "reask", job.round))
            job.step = "answer"
            return False
        if job.step == "answer" and cfg.followup is not None:
            job.step = "followup"
            return False
        if job.round >= job.rounds:
            return True
        job.step, job.round = "check", job.round + 1
        return False


def add_check_turns(
    conv: Conversation, result: CheckResult, round: int, *, batch_seconds: float = 0.0
) -> None:
    """Append a check's prompt (user turn) and the check itself (assistant turn, with its
    verdict); a failed check marks the conversation failed instead."""
    if result.error is not None:
        conv.fail(f"check: {result.error}", result.error_kind)
        return
    conv.add(Turn("user", result.prompt, "check_prompt", round))
    conv.add(
        Turn(
            "assistant",
            result.text,
            "check",
            round,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cached_tokens=result.cached_tokens,
            seconds=result.seconds,
            batch_seconds=batch_seconds,
            finish_reason=result.finish_reason,
            verdict=result.verdict,
            source=result.source,
            prompt_sha256=result.prompt_sha256,
        )
    )


# --- the two ways most callers use it --------------------------------------------------------


def _conversations(items: Iterable[str | Conversation]) -> Iterator[Conversation]:
    if isinstance(items, str | Conversation):  # a str would give one question per character
        raise TypeError("items must be a list of questions or Conversations; wrap one in [...]")
    for i, item in enumerate(items):
        if isinstance(item, Conversation):
            yield item
        elif isinstance(item, str):
            yield Conversation(id=f"q{i}", question=item)
        else:
            raise TypeError(
                f"items must be question strings or Conversations, got {type(item).__name__}"
            )


def _resolve(config: CaCConfig | None, overrides: dict[str, Any]) -> CaCConfig:
    config = config or CaCConfig()
    return replace(config, **overrides) if overrides else config


def run_cac(
    backend: Backend,
    items: Sequence[str | Conversation],
    check: Check | None,
    config: CaCConfig | None = None,
    **overrides: Any,
) -> list[Conversation]:
    """Run Check as Context on `items` and return their conversations, in order.

    Arguments:
        backend: any `Backend` (e.g. ``get_backend("llamacpp/smollm2")``).
        items: question strings (ids ``q0``, ``q1``, ...) or `Conversation`s.
        check: a `Check` (e.g. ``SelfCheck()``), or None to answer once with no live check.
        config: a `CaCConfig` (default ``CaCConfig()``: one round).
        overrides: `CaCConfig` fields to replace, e.g. ``rounds=2``.

    Returns:
        One `Conversation` per item, whose `turns` read question, answer, then
        (check_prompt, check, reask, answer) per round; `final_answer()` gives the kept answer.

    Example::

        import selfcorrect as sc
        backend = sc.get_backend("llamacpp/smollm2")
        [conv] = sc.run_cac(backend, ["Is 91 a prime number?"], sc.SelfCheck(), rounds=1)
        print(conv.final_answer().content)
    """
    convs = list(_conversations(items))
    cfg = _resolve(config, overrides)
    scheduler = Scheduler(backend)
    for conv in convs:
        scheduler.add(conv, check, cfg)
    while scheduler.jobs:
        scheduler.step()
    return convs


def iter_cac(
    backend: Backend,
    items: Iterable[str | Conversation],
    check: Check | None,
    config: CaCConfig | None = None,
    *,
    window: int = 16,
    **overrides: Any,
) -> Iterator[Conversation]:
    """Like `run_cac`, but yields each conversation as soon as it is finished, keeping at most
    `window` in flight (a finished one is replaced by the next item at once).

    `items` may be any iterable (a generator over a large file, say); conversations come out
    in the order they finish, so key them by `Conversation.id`.

    Example::

        for conv in iter_cac(backend, questions, SelfCheck(), window=32, rounds=1):
            save(conv.id, conv.final_answer().content)
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    cfg = _resolve(config, overrides)
    pending = _conversations(items)
    scheduler = Scheduler(backend)
    exhausted = False
    while True:
        while not exhausted and len(scheduler) < window:
            conv = next(pending, None)
            if conv is None:
                exhausted = True
            else:
                scheduler.add(conv, check, cfg)
        if not scheduler.jobs:
            return
        yield from scheduler.step()
