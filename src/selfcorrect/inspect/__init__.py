"""Check as Context as an Inspect AI extension (``pip install 'selfcorrect[inspect]'``).

Registered through the ``inspect_ai`` entry point (`selfcorrect.inspect._registry`), addressed
as ``selfcorrect/<name>``:

- solver ``selfcorrect/cac`` (`selfcorrect.inspect.solver.cac`): CaC rounds after a task's own
  generation, every round recorded and scored;
- model provider ``selfcorrect/<spec>`` (`selfcorrect.inspect.provider.CaCModelAPI`): CaC
  inside ``generate`` over any selfcorrect backend; ``-M rounds=0`` is a plain offline provider;
- tasks ``selfcorrect/bbq`` and ``selfcorrect/advbench`` (`selfcorrect.inspect.tasks`) with their
  per-round scorers (`selfcorrect.inspect.scorers`).

``import selfcorrect`` does not import this package (nor Inspect).
"""

from __future__ import annotations

try:
    import inspect_ai  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "selfcorrect.inspect needs Inspect AI: pip install 'selfcorrect[inspect]'"
    ) from exc
