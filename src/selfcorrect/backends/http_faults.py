"""HTTP failures of the OpenAI-compatible backend: what kind each is, whether to retry it, how
long a server asked us to wait, and error texts scrubbed of secrets."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from selfcorrect.backends.base import FailureKind

TRANSIENT_STATUS = {408, 409, 429, 500, 502, 503, 504}
AUTH_STATUS = {401, 403}
INVALID_STATUS = {400, 413, 422}  # the server refused the request itself
TIMEOUT_STATUS = {408, 504}


class Failure(Exception):
    """A failed request. kind: connect, timeout, status (then `status` is the HTTP status),
    auth, malformed, template (the chat cannot be rendered), local (it could not be sent)."""

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        transient: bool,
        retry_after: float | None = None,
        status: int | None = None,
    ):
        super().__init__(message)
        self.kind = kind
        self.transient = transient
        self.retry_after = retry_after
        self.status = status

    def failure_kind(self) -> FailureKind:
        """Whose failure this is, for whoever serves the answer (see `FailureKind`)."""
        if self.kind == "template" or self.status in INVALID_STATUS:
            return "invalid"
        if self.kind == "connect":
            return "unreachable"
        if self.kind == "timeout" or self.status in TIMEOUT_STATUS:
            return "timeout"
        return "upstream"


_URL_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def scrub(text: str, api_key: str) -> str:
    """`text` without the API key (raw or JSON-escaped) or credentials in URLs."""
    if api_key != "EMPTY" and len(api_key) >= 4:
        for form in {api_key, json.dumps(api_key)[1:-1], api_key.replace("/", "\\/")}:
            text = text.replace(form, "***")
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def is_local(cause: BaseException | None) -> bool:
    """Did the HTTP client fail before anything reached the network (a header it cannot
    encode, a bad URL)? Class names, because the openai client may use httpx or its fork."""
    if cause is None or isinstance(cause, OSError):
        return False
    names = {cls.__name__ for cls in type(cause).__mro__}
    if names & {"LocalProtocolError", "UnsupportedProtocol", "InvalidURL"}:
        return True
    return "TransportError" not in names


def choices_of(response: Any) -> list[Any]:
    """The choices of a parsed response; a body that did not parse as one is malformed."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise Failure(
            f"malformed response ({str(response)[:80]!r})", kind="malformed", transient=True
        )
    return choices


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number, or an HTTP date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
