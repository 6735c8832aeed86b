"""``manifests/`` rendered from the code: the committed copy, the URLs, scopes and topics in it,
and ``textback manifests render``."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from connector.cli import main
from connector.kernel.errors import ConfigurationError
from connector.kernel.http import WebhookRequest
from connector.marketplace import EXAMPLE_PUBLIC_URL, render
from connector.marketplace.hubspot import FEATURE_SCOPES, scopes
from connector.web import create_app
from connector.web.oauth import redirect_uri
from crm_adapters import oauth_flow
from crm_adapters.housecallpro import HousecallProCrm
from crm_adapters.hubspot import HubSpotCrm
from crm_adapters.jobber import JobberCrm

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "manifests"
APP = "hubspot/src/app/app-hsmeta.json"
HOOKS = "hubspot/src/app/webhooks/webhooks-hsmeta.json"


def _committed() -> dict[str, str]:
    return {p.relative_to(COMMITTED).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(COMMITTED.rglob("*")) if p.is_file()}


def test_committed_manifests_are_what_the_code_renders() -> None:
    rendered, committed = render(EXAMPLE_PUBLIC_URL), _committed()
    fix = f"run: textback manifests render --public-url {EXAMPLE_PUBLIC_URL} --out manifests"
    assert sorted(committed) == sorted(rendered), fix
    stale = [path for path in rendered if committed[path] != rendered[path]]
    assert stale == [], f"{stale} differ from the code; {fix}"


def test_hubspot_scopes_are_the_ones_the_code_asks_for() -> None:
    auth = json.loads(render()[APP])["config"]["auth"]
    if HubSpotCrm.oauth is not None:
        url = oauth_flow.authorize_url(HubSpotCrm, "client", "https://x.test/cb", "state")
        query = parse_qs(urlsplit(url).query)
        asked = set(query.get("scope", [""])[0].split())
        optional = set(query.get("optional_scope", [""])[0].split()) - {""}
    else:  # a private-app token: the scopes the adapter requires of it, and the features'
        asked = set(HubSpotCrm.required_scopes) | set(FEATURE_SCOPES)
        optional = set()
    assert set(FEATURE_SCOPES) <= asked, "the install must ask for what the features use"
    assert set(auth["requiredScopes"]) == asked
    assert set(auth["optionalScopes"]) == optional
    assert (tuple(auth["requiredScopes"]), tuple(auth["optionalScopes"])) == scopes()
    assert len(auth["requiredScopes"]) == len(asked)  # each once


def test_redirect_urls_are_the_callbacks_the_install_sends() -> None:
    files = render(EXAMPLE_PUBLIC_URL)
    runtime = SimpleNamespace(settings=SimpleNamespace(public_url=EXAMPLE_PUBLIC_URL))
    app = json.loads(files[APP])["config"]
    assert app["distribution"] == "marketplace"
    assert app["auth"]["redirectUrls"] == [redirect_uri(runtime, "hubspot")]  # type: ignore[arg-type]
    jobber = json.loads(files["jobber/app.json"])
    assert jobber["oauth_redirect_url"] == redirect_uri(runtime, "jobber")  # type: ignore[arg-type]
    hcp = json.loads(files["housecallpro/app.json"])
    assert hcp["oauth_redirect_url"] == redirect_uri(runtime, "housecallpro")  # type: ignore[arg-type]
    assert jobber["scopes"] == list(JobberCrm.required_scopes)


def _hubspot_event(topic: dict[str, str]) -> WebhookRequest:
    value = "COMPLETED" if topic["propertyName"] == "hs_task_status" else "appointmentscheduled"
    body = json.dumps([{"eventId": 7, "subscriptionType": topic["subscriptionType"],
                        "objectId": 42, "propertyName": topic["propertyName"],
                        "propertyValue": value}]).encode()
    return WebhookRequest(method="POST", url="https://x.test/", headers={}, body=body)


def test_hubspot_subscribes_to_exactly_the_events_the_adapter_acts_on() -> None:
    hooks = json.loads(render()[HOOKS])["config"]
    subscribed = hooks["subscriptions"]["crmObjects"]
    assert {(s["objectType"], s["propertyName"]) for s in subscribed} == {
        ("task", "hs_task_status"), ("deal", "dealstage")}
    for topic in subscribed:
        assert topic["active"] is True
        assert HubSpotCrm.parse_webhook(None, _hubspot_event(topic)), topic  # type: ignore[arg-type]
    assert set(hooks["subscriptions"]) == {"crmObjects"}


def test_developer_centre_topics_are_the_ones_parsed() -> None:
    files = render()
    jobber = json.loads(files["jobber/app.json"])
    assert jobber["webhook_topics"] == ["APP_DISCONNECT"]
    body = json.dumps({"data": {"webHookEvent": {"topic": "APP_DISCONNECT", "accountId": "A1",
                                                 "itemId": "A1", "occurredAt": "2026-06-15"}}})
    request = WebhookRequest(method="POST", url="https://x.test/", headers={}, body=body.encode())
    assert JobberCrm.parse_webhook(None, request)  # type: ignore[arg-type]
    hcp = json.loads(files["housecallpro/app.json"])
    assert hcp["webhook_topics"] == ["lead.converted"]
    body = json.dumps({"event": "lead.converted", "lead": {"id": "ld_1"}})
    request = WebhookRequest(method="POST", url="https://x.test/", headers={}, body=body.encode())
    assert HousecallProCrm.parse_webhook(None, request)  # type: ignore[arg-type]


def test_every_rendered_url_is_served_by_the_app(runtime) -> None:  # type: ignore[no-untyped-def]
    files = render(EXAMPLE_PUBLIC_URL)
    urls = create_app(runtime).url_map.bind("textback.example.com", url_scheme="https")
    jobber, hcp = json.loads(files["jobber/app.json"]), json.loads(files["housecallpro/app.json"])
    hooks = json.loads(files[HOOKS])["config"]["settings"]["targetUrl"]
    posted = [jobber["webhook_url"], hcp["webhook_url"], hooks]
    for url in posted:
        assert urls.match(urlsplit(url).path, method="POST")[0] == "crm_webhooks.crm_webhook"
    fetched = [jobber["oauth_redirect_url"], jobber["manage_app_url"]]
    for url in fetched:
        assert urls.match(urlsplit(url).path, method="GET")[0] in ("oauth.callback", "pages.dashboard")


def test_a_public_url_with_a_path_prefix_keeps_it() -> None:
    files = render("https://crm.example.org/textback/")
    app = json.loads(files[APP])["config"]
    assert app["auth"]["redirectUrls"] == ["https://crm.example.org/textback/oauth/hubspot/callback"]
    assert json.loads(files["jobber/app.json"])["webhook_url"] == (
        "https://crm.example.org/textback/webhooks/crm/jobber")
    assert app["support"]["supportEmail"] == "support@crm.example.org"


@pytest.mark.parametrize("url", ["http://textback.example.com", "ftp://textback.example.com",
                                 "textback.example.com", "https://textback.example.com/?a=1"])
def test_a_public_url_crms_cannot_call_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="public URL|https"):
        render(url)


def test_the_command_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["manifests", "render", "--public-url", "https://tb.example.net", "--out",
                 str(out), "--support-email", "help@example.net"]) == 0
    expected = render("https://tb.example.net", support_email="help@example.net")
    assert {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()} \
        == expected
    assert f"wrote {len(expected)} file(s)" in capsys.readouterr().out


def test_the_command_takes_the_public_url_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTBACK_DATABASE_URL", f"sqlite:///{tmp_path / 'm.db'}")
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", "m" * 40)
    monkeypatch.setenv("TEXTBACK_PUBLIC_URL", "https://env.example.net")
    assert main(["manifests", "render", "--out", str(tmp_path / "m")]) == 0
    app = json.loads((tmp_path / "m" / APP).read_text())
    assert app["config"]["auth"]["redirectUrls"] == ["https://env.example.net/oauth/hubspot/callback"]


@pytest.mark.parametrize("args", [["--public-url", "http://tb.example.net"],
                                  ["--public-url", "https://tb.example.net", "--support-email", "x"]])
def test_a_command_mistake_is_one_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    out = tmp_path / "out"
    assert main(["manifests", "render", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textback: ") and err.count("\n") == 1
    assert not out.exists()
