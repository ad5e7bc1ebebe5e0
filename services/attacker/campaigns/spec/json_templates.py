"""JSON templates of the http-json protocol: a request body with "$inputs" where the batch goes, and an
optional per-input template with "$input" where one input's tensor goes (`{"pixels": "$input"}`, so that
`{"images": [{"pixels": ...}, ...]}` carries a whole batch). A placeholder is a string equal to it, nothing
else. Templates are bounded in depth and size when the spec is validated: they are stored with the campaign
and walked for every request."""

from __future__ import annotations

import json
from typing import Any

BATCH = "$inputs"
ONE_INPUT = "$input"
MAX_DEPTH = 16
MAX_BYTES = 16 * 1024


def check(template: Any, placeholder: str, what: str) -> None:
    """ValueError with the reason unless the template is within the bounds and holds the placeholder."""
    if depth(template) > MAX_DEPTH:
        raise ValueError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    size = len(json.dumps(template).encode())
    if size > MAX_BYTES:
        raise ValueError(f"{what} is {size} bytes as JSON, more than {MAX_BYTES}")
    if not holds(template, placeholder):
        raise ValueError(f'{what} must contain the string "{placeholder}" (as a whole value) where '
                         f"{'the batch' if placeholder == BATCH else 'each input'} goes")


def depth(template: Any) -> int:
    """Levels of objects and lists (a scalar is 0), counted without recursion and given up past MAX_DEPTH."""
    deepest, stack = 0, [(template, 1)]
    while stack and deepest <= MAX_DEPTH:
        value, level = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def holds(template: Any, placeholder: str) -> bool:
    stack = [template]
    while stack:
        value = stack.pop()
        if value == placeholder:
            return True
        stack.extend(value.values() if isinstance(value, dict) else value if isinstance(value, list) else ())
    return False


def fill(template: Any, placeholder: str, value: Any) -> Any:
    """The template with every `placeholder` string replaced by `value` (the template is at most MAX_DEPTH deep)."""
    if template == placeholder:
        return value
    if isinstance(template, dict):
        return {k: fill(v, placeholder, value) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, placeholder, value) for v in template]
    return template
