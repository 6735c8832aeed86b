"""``api_base_url`` in an account file: https to a real host only, since credentials go there."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from marshmallow import ValidationError

from connector.kernel.errors import ConfigurationError
from connector.settings import config
from connector.settings.account_schema import AccountSchema, http_loopback_policy
from connector.settings.config import load_settings
from connector.storage.accounts import validate_account
from tests.connector.test_accounts import TWILIO_HUBSPOT

#: Where each section keeps its ``api_base_url``, and how the error names it.
SECTIONS = {
    "carrier": "carrier.api_base_url",
    "carrier.sms": "carrier.sms.api_base_url",
    "crm": "crm.api_base_url",
}
HINT = "must be an https URL without a user name, such as https://api.example.com"
METADATA = "must not point at a link-local or cloud metadata address"

#: What the outside probe got accepted, and what each must now be told.
PROBE = [
    ("http://169.254.169.254", METADATA),
    ("http://169.254.169.254/latest/meta-data/", METADATA),
    ("http://127.0.0.1:6379", "TEXTBACK_ALLOW_HTTP_LOOPBACK=true"),
    ("ftp://files.example.com/api", HINT),
    ("https://example.com@127.0.0.1", HINT),
]


@pytest.fixture(autouse=True)
def _keep_loaded_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests here load settings; whatever this process had loaded before comes back after."""
    monkeypatch.setattr(config, "_loaded_http_loopback", config._loaded_http_loopback)


def with_urls(**urls: str) -> dict[str, Any]:
    """The Twilio/HubSpot account with a Twilio SMS section, each ``api_base_url`` as given."""
    doc = copy.deepcopy(TWILIO_HUBSPOT)
    doc["carrier"]["sms"] = {"kind": "twilio",
                             "credentials": dict(doc["carrier"]["credentials"])}
    where = {"carrier": doc["carrier"], "carrier.sms": doc["carrier"]["sms"], "crm": doc["crm"]}
    for section, url in urls.items():
        where[section.replace("_", ".")]["api_base_url"] = url
    return doc


def refusal(doc: dict[str, Any], *, allow_http_loopback: bool | None = False) -> str:
    """The error an account document is refused with (``None``: the setting decides)."""
    with http_loopback_policy(allow_http_loopback), pytest.raises(ConfigurationError) as info:
        validate_account(doc)
    return str(info.value)


@pytest.mark.parametrize("section", sorted(SECTIONS))
@pytest.mark.parametrize(("url", "says"), PROBE)
def test_each_probe_value_is_refused_in_each_section(section: str, url: str, says: str) -> None:
    message = refusal(with_urls(**{section.replace(".", "_"): url}))
    line = next(line for line in message.splitlines() if SECTIONS[section] + ":" in line)
    assert says in line
    # Nothing else in the file is wrong.
    assert sum(".api_base_url:" in line for line in message.splitlines()) == 1


@pytest.mark.parametrize("url", [
    "https://169.254.169.254",  # https does not make the metadata service a provider
    "https://[fe80::1]:8443/api",
    "https://2852039166/",  # 169.254.169.254 written as one number
    "https://[::ffff:169.254.169.254]/",
    "https://metadata.google.internal/computeMetadata/v1",
])
def test_link_local_and_metadata_addresses_are_refused_even_over_https(url: str) -> None:
    assert METADATA in refusal(with_urls(crm=url), allow_http_loopback=True)


@pytest.mark.parametrize("url", [
    "https://user:secret@api.example.com",
    "https://api.example.com/#frag",
    "https://api.example.com/?region=eu",
    "https:///v2",
    "http://api.example.com",
    "http://10.0.0.5:8080",
    "https://api.example.com:99999",
    "https://api.exa mple.com",
    "https://127.0.0.1\\@api.example.com",
    "javascript:alert(1)",
])
def test_other_bad_urls_are_refused(url: str) -> None:
    assert HINT in refusal(with_urls(carrier=url), allow_http_loopback=True)


def test_every_bad_url_is_reported_in_one_pass() -> None:
    message = refusal(with_urls(carrier="http://169.254.169.254", carrier_sms="ftp://x.example.com",
                                crm="https://example.com@127.0.0.1"))
    for field in SECTIONS.values():
        assert f"{field}:" in message, field


def test_good_https_urls_are_kept() -> None:
    data = validate_account(with_urls(carrier="https://api.twilio.com",
                                      carrier_sms="https://proxy.example.com/twilio/",
                                      crm="https://api.hubapi.com"))
    assert data["carrier"]["api_base_url"] == "https://api.twilio.com"
    assert data["carrier"]["sms"]["api_base_url"] == "https://proxy.example.com/twilio/"
    assert data["crm"]["api_base_url"] == "https://api.hubapi.com"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8089", "http://[::1]:8089/",
                                 "http://localhost:8089", "http://127.8.9.10/stub"])
def test_plain_http_to_this_machine_follows_the_setting(url: str) -> None:
    base = {"TEXTBACK_SECRET_KEY": "k" * 40, "TEXTBACK_DATABASE_URL": "sqlite:///:memory:"}
    load_settings(base)
    assert "TEXTBACK_ALLOW_HTTP_LOOPBACK=true" in refusal(with_urls(crm=url),
                                                         allow_http_loopback=None)
    load_settings({**base, "TEXTBACK_ALLOW_HTTP_LOOPBACK": "true"})
    assert validate_account(with_urls(crm=url))["crm"]["api_base_url"] == url
    # A caller holding the settings can also say so itself.
    with pytest.raises(ValidationError, match="TEXTBACK_ALLOW_HTTP_LOOPBACK"):
        AccountSchema(allow_http_loopback=False).load(with_urls(crm=url))
