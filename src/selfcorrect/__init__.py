"""selfcorrect: LLM self-correction as in-context alignment (Wang et al., NeurIPS 2024).

Check as Context (CaC) on your own questions, in a few lines::

    import selfcorrect as sc

    backend = sc.get_backend("llamacpp/smollm2")          # the embedded model, in process
    convs = sc.run_cac(backend, ["Is 91 a prime number?"], sc.SelfCheck(), rounds=1)
    print(convs[0].final_answer().content)

A check is anything with a `name` and ``check(backend, conversations, round)`` returning one
`CheckResult` per conversation (see `Check`). Importing this package loads no model library:
torch, llama.cpp and transformers are imported only when a backend or the theory lab needs them.
"""

from selfcorrect.backends.base import (
    Backend,
    BackendError,
    Completion,
    GenParams,
    Message,
    get_backend,
)
from selfcorrect.cac.checks import (
    Check,
    CheckResult,
    CheckSettings,
    ModelCheck,
    OracleCheck,
    SelfCheck,
    VerdictCheck,
    make_check,
)
from selfcorrect.cac.conversation import Conversation, Turn
from selfcorrect.cac.engine import CaCConfig, iter_cac, run_cac

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "CaCConfig",
    "Check",
    "CheckResult",
    "CheckSettings",
    "Completion",
    "Conversation",
    "GenParams",
    "Message",
    "ModelCheck",
    "OracleCheck",
    "SelfCheck",
    "Turn",
    "VerdictCheck",
    "get_backend",
    "iter_cac",
    "make_check",
    "run_cac",
]
