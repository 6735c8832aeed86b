"""Account files: validation naming the field, nothing written on refusal, sealed credentials."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from connector.kernel.errors import ConfigurationError
from connector.storage.accounts import REDACTED, export_account, import_account, parse_account_file
from connector.storage.crypto import CredentialBox
from connector.storage.models import Account

TWILIO_HUBSPOT = {
    "id": "acme-plumbing",
    "name": "Acme Plumbing",
    "timezone": "America/Denver",
    "carrier": {
        "kind": "twilio",
        "credentials": {"account_sid": "AC" + "a" * 32, "auth_token": "tok-twilio-secret-123"},
        "numbers": ["(415) 555-0100"],
        "forward_to": ["+1 415 555 0199"],
    },
    "crm": {
        "kind": "hubspot",
        "credentials": {"access_token": "pat-na1-secret-hubspot-token"},
        "mapping": {"pipeline": "default", "stage": "appointmentscheduled", "owner_id": "42"},
    },
}


def test_valid_file_is_stored_with_numbers_normalised_and_secrets_sealed(runtime):
    with runtime.db.session() as s:
        import_account(s, runtime.box, TWILIO_HUBSPOT)
    with runtime.db.session() as s:
        account = s.get(Account, "acme-plumbing")
        assert account.settings["carrier"]["numbers"] == ["+14155550100"]
        assert account.settings["carrier"]["forward_to"] == ["+14155550199"]
        assert account.settings["carrier"]["ring_timeout_seconds"] == 20
        assert "tok-twilio-secret-123" not in account.carrier_credentials
        assert "pat-na1" not in account.crm_credentials
        assert "credentials" not in account.settings["carrier"]
        assert runtime.box.open(account.crm_credentials)["access_token"].startswith("pat-na1")


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("timezone",), "Mars/Olympus", "timezone"),
        (("carrier", "numbers"), ["12"], "carrier.numbers[0]"),
        (("carrier", "kind"), "pigeon", "carrier.kind"),
        (("carrier", "credentials", "account_sid"), None, "carrier.credentials.account_sid"),
        (("crm", "credentials", "access_token"), None, "crm.credentials.access_token"),
        (("crm", "mapping", "task_priority"), "URGENT", "crm.mapping.task_priority"),
        (("id",), "Not A Slug", "id"),
        (("templates",), {"missed_call": "Hi from {biz}"}, "templates.missed_call"),
        (("crm", "api_base_url"), "http://169.254.169.254", "crm.api_base_url"),
        (("carrier", "api_base_url"), "https://example.com@127.0.0.1", "carrier.api_base_url"),
    ],
)
def test_bad_file_is_refused_naming_the_field_and_nothing_is_written(runtime, path, value, field):
    doc = copy.deepcopy(TWILIO_HUBSPOT)
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    with pytest.raises(ConfigurationError) as info:
        with runtime.db.session() as s:
            import_account(s, runtime.box, doc)
    assert field in str(info.value)
    with runtime.db.session() as s:
        assert s.scalars(select(Account)).all() == []


def test_unknown_field_is_refused():
    doc = copy.deepcopy(TWILIO_HUBSPOT)
    doc["crm"]["mapping"]["pipline"] = "typo"
    with pytest.raises(ConfigurationError, match="crm.mapping.pipline"):
        parse_account_file(__import__("json").dumps(doc))


def test_not_json_is_refused():
    with pytest.raises(ConfigurationError, match="not JSON"):
        parse_account_file("{nope")


def test_export_redacts_secrets_and_a_redacted_file_reimports_keeping_them(runtime):
    with runtime.db.session() as s:
        account = import_account(s, runtime.box, TWILIO_HUBSPOT)
        exported = export_account(account, runtime.box)
    assert exported["carrier"]["credentials"]["auth_token"] == REDACTED
    assert exported["carrier"]["credentials"]["account_sid"] == "AC" + "a" * 32
    assert exported["crm"]["credentials"]["access_token"] == REDACTED
    exported["name"] = "Acme Plumbing & Heating"
    with runtime.db.session() as s:
        account = import_account(s, runtime.box, exported)
        full = export_account(account, runtime.box, include_secrets=True)
    assert full["name"] == "Acme Plumbing & Heating"
    assert full["carrier"]["credentials"]["auth_token"] == "tok-twilio-secret-123"
    assert full["crm"]["credentials"]["access_token"] == "pat-na1-secret-hubspot-token"


def test_redacted_secret_for_a_new_account_is_refused(runtime):
    doc = copy.deepcopy(TWILIO_HUBSPOT)
    doc["carrier"]["credentials"]["auth_token"] = REDACTED
    with pytest.raises(ConfigurationError, match="auth_token"):
        with runtime.db.session() as s:
            import_account(s, runtime.box, doc)


def test_credentials_sealed_under_another_key_are_a_clear_error():
    token = CredentialBox("a" * 40).seal({"x": "y"})
    with pytest.raises(ConfigurationError, match="TEXTBACK_SECRET_KEY"):
        CredentialBox("b" * 40).open(token)


def test_every_problem_is_reported_in_one_pass_in_the_users_words():
    """Credentials, owners and templates are checked even while other fields are wrong."""
    from connector.settings.account_schema import AccountFileError, account_errors

    doc = copy.deepcopy(TWILIO_HUBSPOT)
    doc["carrier"]["credentials"] = {"account_sid": "AC123"}
    doc["carrier"]["numbers"] = ["12"]
    doc["crm"]["credentials"] = {}
    doc["crm"]["mapping"]["pipline"] = "typo"
    doc["hours"] = {"weekly": {"mon": [["8am", "17:00"]], "tue": [["09:00"]],
                               "funday": [], "wed": [["10:00", "09:00"]]}}
    doc["policy"] = {"text_countries": ["USA", "ca"], "quiet_hours": {"start": "8", "end": "9:30"},
                     "cooldown_hours": -1}
    doc["routing"] = {"owners": [{"id": "1", "name": "Dana", "alerts": ["sms"]}],
                      "default_owner": "7", "round_robin": ["1", "9"]}
    doc["templates"] = {"missed_call": "bob", "texts": {"bob": {
        "en": "Hi, this is Bob, a real person at {business_name}, not a bot"}}}
    with pytest.raises(AccountFileError) as info:
        parse_account_file(__import__("json").dumps(doc))
    expected = {
        "carrier.credentials.account_sid": ["must be a Twilio Account SID: AC and 32 hex digits"],
        "carrier.credentials.auth_token": ["required"],
        "carrier.numbers[0]": ["not a valid phone number (use E.164, e.g. +14155550100)"],
        "crm.credentials.access_token": [
            "required: a private app's access token, or client_id for the marketplace app's "
            "install"],
        "crm.mapping.pipline": ["not a setting here: check the spelling"],
        "hours.weekly.funday": ["not a day of the week: use mon, tue, wed, thu, fri, sat, sun"],
        "hours.weekly.mon[0] start": ["'8am' is not a 24-hour time such as 08:00"],
        "hours.weekly.tue[0]": ['must be a [start, end] pair such as ["08:00", "17:00"]'],
        "hours.weekly.wed": ["10:00-09:00: the end must be after the start"],
        "policy.cooldown_hours": ["must be a number from 0 to 720"],
        "policy.text_countries[0]": ["'USA' is not a two-letter country code such as US"],
        "policy.quiet_hours.start": ["'8' is not a 24-hour time such as 08:00"],
        "routing.owners[0].mobile": ["sms alerts need a mobile"],
        "routing.default_owner": ["no owner with id '7' (owners: 1)"],
        "routing.round_robin[1]": ["no owner with id '9' (owners: 1)"],
        "templates.texts.bob.en": [
            "texts are automated and must not claim to be a person ('real person')"],
    }
    assert info.value.errors == expected
    assert account_errors(doc) == expected
    message = str(info.value)
    assert message.startswith("account file refused, nothing written:\n  ")
    assert "  hours.weekly.mon[0] start: '8am' is not a 24-hour time such as 08:00" in message
    assert "value" not in info.value.errors and ".0." not in message


def test_times_and_countries_are_read_the_way_people_write_them():
    from connector.settings.account_schema import load_account

    doc = copy.deepcopy(TWILIO_HUBSPOT)
    doc["hours"] = {"weekly": {"mon": [["8:00", "12:30"], ["13:00", "24:00"]]}}
    doc["policy"] = {"text_countries": ["us", " ca "], "quiet_hours": {"start": "8:00"}}
    data = load_account(doc)
    assert data["hours"]["weekly"]["mon"] == [["08:00", "12:30"], ["13:00", "24:00"]]
    assert data["policy"]["text_countries"] == ["US", "CA"]
    assert data["policy"]["quiet_hours"]["start"] == "08:00"
    doc["hours"] = {"weekly": {"mon": [["24:00", "25:00"]]}}
    from connector.settings.account_schema import account_errors

    assert account_errors(doc) == {
        "hours.weekly.mon[0] start": ["'24:00' is not a 24-hour time such as 08:00"],
        "hours.weekly.mon[0] end": ["'25:00' is not a 24-hour time such as 08:00 (or 24:00 for "
                                    "midnight)"]}


def test_a_file_that_is_not_an_object_is_refused_in_words():
    with pytest.raises(ConfigurationError, match="account: an account file is a JSON object"):
        parse_account_file("[1, 2]")


def test_a_hidden_secret_with_nothing_stored_is_named_with_the_other_problems(runtime):
    from connector.settings.account_schema import AccountFileError

    doc = copy.deepcopy(TWILIO_HUBSPOT)
    doc["carrier"]["credentials"]["auth_token"] = REDACTED
    doc["policy"] = {"cooldown_hours": -1}
    with pytest.raises(AccountFileError) as info:
        with runtime.db.session() as s:
            import_account(s, runtime.box, doc)
    assert info.value.errors == {
        "policy.cooldown_hours": ["must be a number from 0 to 720"],
        "carrier.credentials.auth_token": [
            "is ******** (hidden by export) but no value is stored for this account: give the "
            "real value"],
    }
    with runtime.db.session() as s:
        assert s.scalars(select(Account)).all() == []


WEIRD_VALUES = ["x", 1, None, [], {}, [1], {"a": 1}, True, 1.5, [[1, 2]], {"en": 5}]


@pytest.mark.parametrize("path", [
    ("carrier",), ("crm",), ("carrier", "credentials"), ("carrier", "sms"), ("crm", "credentials"),
    ("hours",), ("hours", "weekly"), ("hours", "weekly", "mon"), ("hours", "per_number"),
    ("templates",), ("templates", "texts"), ("templates", "texts", "x"),
    ("templates", "missed_call"), ("policy",), ("policy", "quiet_hours"),
    ("policy", "text_countries"), ("routing",), ("routing", "owners"),
    ("routing", "round_robin"), ("routing", "by_number"), ("id",), ("carrier", "kind"),
])
def test_any_shape_of_a_setting_is_a_message_never_a_crash(path):
    from connector.settings.account_schema import account_errors

    for value in WEIRD_VALUES:
        doc = copy.deepcopy(TWILIO_HUBSPOT)
        target = doc
        for key in path[:-1]:
            target = target.setdefault(key, {})
        target[path[-1]] = value
        errors = account_errors(doc)
        assert all(isinstance(k, str) and v and all(isinstance(m, str) for m in v)
                   for k, v in errors.items()), (path, value, errors)


def test_settings_stored_under_older_rules_still_load_and_a_new_save_applies_them(runtime):
    """A template or country refused today may be stored from before: the jobs read it as it
    is, and only saving the file again asks for the fix."""
    from connector.settings.account_schema import account_errors
    from connector.settings.account_settings import account_settings

    with runtime.db.session() as s:
        account = import_account(s, runtime.box, TWILIO_HUBSPOT)
        account.settings = {**account.settings, "policy": {"text_countries": ["US", "UK"]},
                            "templates": {"texts": {"general": {
                                "en": "Hi, this is Bob from {business_name}."}}}}
    with runtime.db.session() as s:
        stored = s.get(Account, "acme-plumbing")
        typed = account_settings(stored)
        assert typed.policy_section["text_countries"] == ["US", "UK"]
        assert typed.templates_section["texts"]["general"]["en"].startswith("Hi, this is Bob")
        document = export_account(stored, runtime.box, include_secrets=True)
    assert account_errors(document) == {
        "templates.texts.general.en": [
            "texts are automated and must not claim to be a person ('this is Bob from')"],
        "policy.text_countries[1]": [
            "'UK' names no country: use its two-letter code, such as US, CA or GB"],
    }
