"""What the carrier adapters' tests share: the ``http`` mock and the captured payloads.

Each carrier's payloads live in ``tests/fixtures/<carrier>/<scenario>.<form|json>`` with a
README naming the documentation each one follows; :class:`Fixtures` reads them::

    FIXTURES = Fixtures("twilio")
    fixture_body = FIXTURES.body   # the bytes the carrier would post
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import responses

#: The folder of every carrier's captured-style payloads.
FIXTURES_ROOT = Path(__file__).resolve().parents[1] / "fixtures"


@dataclass(frozen=True)
class Fixtures:
    """One carrier's payloads. A form body loses its trailing newline (the carrier sends none);
    a JSON body does too unless ``keep_json_newline`` (a few suites sign the file as stored)."""

    carrier: str
    keep_json_newline: bool = False

    @property
    def folder(self) -> Path:
        """``tests/fixtures/<carrier>``."""
        return FIXTURES_ROOT / self.carrier

    def path(self, scenario: str) -> Path:
        """The scenario's file, a ``.json`` or a ``.form``."""
        for suffix in (".json", ".form"):
            candidate = self.folder / f"{scenario}{suffix}"
            if candidate.exists():
                return candidate
        raise FileNotFoundError(f"{self.carrier}: no fixture {scenario}")

    def body(self, scenario: str) -> bytes:
        """The scenario's body as the carrier posts it."""
        path = self.path(scenario)
        raw = path.read_bytes()
        if path.suffix == ".json" and self.keep_json_newline:
            return raw
        return raw.rstrip(b"\r\n")

    def json(self, scenario: str) -> Any:
        """The scenario's JSON document."""
        return json.loads(self.body(scenario))


@pytest.fixture
def http() -> Iterator[responses.RequestsMock]:
    """An active ``responses`` mock; unstubbed requests fail with ConnectionError."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock
