"""The pieces of the setup calls that live in the connector: the credentials check's error
translation, and the sandbox carrier's number settings kept in the database."""

from __future__ import annotations

import pytest

from carrier_adapters.provisioning import webhook_urls
from carrier_adapters.sandbox import SandboxCarrier
from connector.kernel.errors import (
    CredentialsRejectedError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderUnreachableError,
    RateLimitedError,
    TransientProviderError,
    checking_credentials,
)
from connector.storage.sandbox_store import DbOutbox

HINT = "check the API key (Settings > API)"


def test_a_refusal_becomes_what_to_fix() -> None:
    with pytest.raises(CredentialsRejectedError) as caught:
        with checking_credentials("Acme Phone", HINT):
            raise ProviderAuthError("acme: HTTP 401", provider="acme", status=401, code="20003")
    assert str(caught.value) == f"Acme Phone refused the credentials (HTTP 401): {HINT}"
    assert (caught.value.provider, caught.value.status, caught.value.code) == ("acme", 401, "20003")


def test_an_outage_is_not_a_refusal() -> None:
    with pytest.raises(ProviderUnreachableError) as caught:
        with checking_credentials("Acme Phone", HINT):
            raise TransientProviderError("acme: HTTP 503", provider="acme", status=503)
    assert not isinstance(caught.value, CredentialsRejectedError)
    assert "Acme Phone could not be reached (HTTP 503)" in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [RateLimitedError("acme: HTTP 429", retry_after=3.0, provider="acme"),
     PermanentProviderError("acme: HTTP 400", provider="acme", status=400)],
)
def test_throttling_and_other_refusals_pass_unchanged(error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        with checking_credentials("Acme Phone", HINT):
            raise error
    assert caught.value is error


def test_the_sandbox_keeps_its_number_settings_in_the_database(runtime) -> None:  # type: ignore[no-untyped-def]
    urls = webhook_urls("https://hooks.example.test", "sandbox", "demo")
    credentials = {"webhook_secret": "x" * 20}
    first = SandboxCarrier(credentials, outbox=DbOutbox(runtime.db, "demo"))
    first.point_webhooks("+14155550100", urls)
    again = SandboxCarrier(credentials, outbox=DbOutbox(runtime.db, "demo"))
    listed = {n.e164: n for n in again.list_numbers()}
    assert listed["+14155550100"].points_at(urls)
    assert not listed["+14155550101"].points_at(urls)
    other_account = SandboxCarrier(credentials, outbox=DbOutbox(runtime.db, "other"))
    assert not any(n.points_at(urls) for n in other_account.list_numbers())
    changes = again.point_webhooks("+14155550100", urls)
    assert not any(c.changed for c in changes)
