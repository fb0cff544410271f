"""Check as Context as an OpenAI-compatible server in front of any model (`selfcorrect serve`)."""

from selfcorrect.serve.app import CaCService, ServeConfig, create_app
from selfcorrect.serve.batcher import Batcher

__all__ = ["Batcher", "CaCService", "ServeConfig", "create_app"]
