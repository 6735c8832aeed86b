"""The rendered HubSpot project, read by HubSpot's own parser (``@hubspot/project-parsing-lib``).

The test installs the parser with npm into ``var/npm/`` (once per version) and runs it with node
on the committed project. The parser's schema check needs a HubSpot account (it fetches the
schemas from HubSpot); everything else it does runs here: the project file, the platform
version, finding each ``*-hsmeta.json`` in its component's folder, the uids, and linking every
feature to the app.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from connector.marketplace import render, write

ROOT = Path(__file__).resolve().parents[2]
PARSER_VERSION = "0.23.0"
PACKAGE = "@hubspot/project-parsing-lib"
SCRIPT = Path(__file__).with_name("parse_project.mjs")
LIB_DIR = ROOT / "var" / "npm" / f"project-parsing-lib-{PARSER_VERSION}"


@pytest.fixture(scope="module")
def parser() -> Path:
    """The folder the parser is installed in; installed on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed: HubSpot's project parser runs on node")
    marker = LIB_DIR / "node_modules" / "@hubspot" / "project-parsing-lib" / "package.json"
    if not marker.exists():
        LIB_DIR.mkdir(parents=True, exist_ok=True)
        (LIB_DIR / "package.json").write_text('{"private": true}\n')
        subprocess.run(  # noqa: S603 - fixed arguments
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
             f"{PACKAGE}@{PARSER_VERSION}"],
            cwd=LIB_DIR, check=True, timeout=600, env={**os.environ, "NO_UPDATE_NOTIFIER": "1"})
    return LIB_DIR


def parse(parser: Path, project: Path) -> dict[str, Any]:
    """What HubSpot's parser makes of ``project``."""
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [shutil.which("node") or "node", str(SCRIPT), str(parser), str(project)],
        capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def problems(result: dict[str, Any]) -> list[str]:
    """Everything HubSpot's parser (or the layout it expects) objects to."""
    found = list(result["errors"])
    if found:
        return found
    if not result["knownVersion"]:
        found.append(f"unknown platform version {result['platformVersion']}")
    if result["platformVersion"] != result["latestSupported"]:
        found.append(f"platform {result['platformVersion']}, newest is {result['latestSupported']}")
    found += [f"not read (wrong folder): {path}" for path in result["skipped"]]
    found += result["uidErrors"]
    found += [f"more than one {kind}" for kind in result["overfull"]]
    apps = [uid for uid, node in result["nodes"].items() if node["componentType"] == "APPLICATION"]
    if len(apps) != 1:
        found.append(f"{len(apps)} apps")
    for uid, node in result["nodes"].items():
        if node["componentType"] != "APPLICATION" and node["componentDeps"].get("app") not in apps:
            found.append(f"{uid} is not attached to the app")
    return found


def test_hubspot_parser_accepts_the_committed_project(parser: Path) -> None:
    result = parse(parser, ROOT / "manifests" / "hubspot")
    assert problems(result) == []
    rendered = render()
    by_path = {node["metaFilePath"]: node for node in result["nodes"].values()}
    expected = {path.removeprefix("hubspot/src/"): json.loads(text)
                for path, text in rendered.items()
                if path.startswith("hubspot/src/") and path.endswith("-hsmeta.json")}
    assert sorted(by_path) == sorted(expected)
    for path, document in expected.items():
        assert by_path[path]["uid"] == document["uid"]
        assert by_path[path]["config"] == document["config"]


def test_the_check_catches_a_misplaced_component(parser: Path, tmp_path: Path) -> None:
    # Guards the check above: a component outside its folder is not read by HubSpot.
    write({p.removeprefix("hubspot/"): t for p, t in render().items() if p.startswith("hubspot/")},
          tmp_path)
    (tmp_path / "src/app/hooks").mkdir()
    (tmp_path / "src/app/webhooks/webhooks-hsmeta.json").rename(
        tmp_path / "src/app/hooks/webhooks-hsmeta.json")
    assert problems(parse(parser, tmp_path)) == [
        "not read (wrong folder): app/hooks/webhooks-hsmeta.json"]


def test_the_check_catches_a_feature_without_its_app(parser: Path, tmp_path: Path) -> None:
    write({p.removeprefix("hubspot/"): t for p, t in render().items() if p.startswith("hubspot/")},
          tmp_path)
    (tmp_path / "src/app/app-hsmeta.json").unlink()
    assert "0 apps" in problems(parse(parser, tmp_path))
