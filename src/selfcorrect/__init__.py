"""selfcorrect: LLM self-correction as in-context alignment (Wang et al., NeurIPS 2024)."""

__version__ = "0.1.0"
