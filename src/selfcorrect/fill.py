"""Prompt templates filled with data: each ``{name}`` field replaced by its text, literally and
in one pass, so text put in for one field is never read as a template (a question that happens
to contain ``{answer}`` stays as written, and no format-string syntax applies)."""

from __future__ import annotations

import re

_FIELD = re.compile(r"\{(\w+)\}")


def fill(template: str, **fields: str) -> str:
    """`template` with each ``{name}`` of `fields` replaced by its text; other braces stay.

    Example::

        fill("Q: {question}", question="Is {x} a set?")  # 'Q: Is {x} a set?'
    """
    return _FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), template)
