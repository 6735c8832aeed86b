"""Checks that apply to some adapters only: collected where they apply, absent elsewhere.

A contract test marked ``@applies(predicate, why)`` is kept for a test class when
``predicate(cls)`` is true and deselected otherwise (see ``tests/conftest.py``), so a green run's
skips are only the ones a machine cannot help (no PostgreSQL, Redis or Chromium).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

Predicate = Callable[[Any], bool]


def applies(predicate: Predicate, why_not: str) -> pytest.MarkDecorator:
    """Mark a contract test as applying only to the classes ``predicate`` accepts."""
    return pytest.mark.applies(predicate, why_not)


def applies_to(item: pytest.Item) -> bool:
    """Whether a collected test applies to its class."""
    mark = item.get_closest_marker("applies")
    cls = getattr(item, "cls", None)
    return mark is None or cls is None or bool(mark.args[0](cls))
