"""Templates: validation when saved, rendering, GSM-7 / UCS-2 segments."""

from __future__ import annotations

import copy

import pytest

from connector.domain.templates import (
    DEFAULT_TEXTS,
    FIRST_MESSAGE_SCENARIOS,
    TemplateError,
    render,
    sms_encoding,
    validate_template,
)
from connector.kernel.errors import ConfigurationError
from connector.storage.accounts import validate_account
from tests.connector.helpers import sandbox_account


def doc_with(**templates):  # type: ignore[no-untyped-def]
    doc = copy.deepcopy(sandbox_account("acme", "secret"))
    doc["templates"] = templates
    return doc


@pytest.mark.parametrize(("name", "langs"), list(DEFAULT_TEXTS.items()))
def test_every_default_is_valid_and_names_the_business(name, langs):
    for text in langs.values():
        validate_template(text, first_message=name in FIRST_MESSAGE_SCENARIOS)
        assert "{business_name}" in text


@pytest.mark.parametrize(("text", "error"), [
    ("Hi {firstname} from {business_name}", "unknown placeholder"),
    ("Hi from {business_name} {}", "empty placeholder"),
    ("Sorry we missed you! Reply here.", "must name the business"),
    ("Hi, I'm Dave from {business_name}, how can I help?", "claim to be a person"),
    ("{business_name}: my name is Sarah and I'll call you", "claim to be a person"),
    ("Hola, soy Marta de {business_name}", "claim to be a person"),
    ("Hi, this is Bob, a real person at {business_name}, not a bot", "claim to be a person"),
    ("Hi, this is Bob from {business_name}. What do you need?", "claim to be a person"),
    ("This is Bob, your plumber at {business_name}", "claim to be a person"),
    ("{business_name}: you are texting a live agent", "claim to be a person"),
    ("{business_name}: this is not an automated message", "claim to be a person"),
    ("{business_name}: no soy un robot, responda aquí", "claim to be a person"),
    ("{business_name} {oops", "malformed"),
])
def test_bad_first_messages_are_refused(text, error):
    with pytest.raises(TemplateError, match=error):
        validate_template(text, first_message=True)


@pytest.mark.parametrize("text", [
    "This is {business_name}, sorry we missed your call. Reply here.",
    "Sorry we missed your call, this is {business_name}. A team member will text you back.",
    "{business_name}: this text is automated; a person will follow up soon.",
    "This is Acme Plumbing ({business_name}), reply with your address.",
])
def test_texts_that_name_the_business_without_claiming_a_person_pass(text):
    validate_template(text, first_message=True)


def test_a_person_claim_is_refused_at_import_with_the_other_problems():
    doc = doc_with(missed_call="bob", texts={"bob": {
        "en": "Hi, this is Bob, a real person at {business_name}, not a bot"}})
    doc["policy"] = {"text_countries": ["USA"]}
    with pytest.raises(ConfigurationError) as info:
        validate_account(doc)
    assert info.value.errors == {  # type: ignore[attr-defined]
        "policy.text_countries[0]": ["'USA' is not a two-letter country code such as US"],
        "templates.texts.bob.en": [
            "texts are automated and must not claim to be a person ('real person')"],
    }


def test_a_bad_template_is_refused_when_the_account_is_saved():
    doc = doc_with(texts={"general": {"en": "Sorry we missed you, call us back."}})
    with pytest.raises(ConfigurationError, match=r"templates.texts.general.en.*name the business"):
        validate_account(doc)
    with pytest.raises(ConfigurationError, match="templates.missed_call"):
        validate_account(doc_with(missed_call="nonexistent"))
    with pytest.raises(ConfigurationError, match="unknown placeholder"):
        validate_account(doc_with(texts={"custom": {"en": "{business_name} {coupon}"}}))


def test_a_custom_scenario_can_be_chosen():
    data = validate_account(doc_with(missed_call="short", texts={
        "short": {"en": "{business_name} missed you. Reply here.", "es": "{business_name}: "
                  "no pudimos contestar. Responda aquí."}}))
    assert data["templates"]["missed_call"] == "short"


def test_render_fills_known_values_and_falls_back_for_a_missing_name():
    text = "Hi {first_name}, {business_name} here. Book: {booking_link}"
    assert render(text, {"business_name": "Acme", "first_name": "Jo",
                         "booking_link": "https://b.example"}) == (
        "Hi Jo, Acme here. Book: https://b.example")
    assert render(text, {"business_name": "Acme"}) == "Hi there, Acme here. Book:"
    assert render("Hola {first_name}, gracias", {"business_name": "Acme"}, "es") == "Hola, gracias"


@pytest.mark.parametrize(("text", "name", "units", "segments"), [
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("[" * 80, "GSM-7", 160, 1),  # extension characters count twice
    ("€" * 81, "GSM-7", 162, 2),
    ("é" * 160, "GSM-7", 160, 1),  # é is in the GSM alphabet
    ("á" * 70, "UCS-2", 70, 1),  # á is not
    ("á" * 71, "UCS-2", 71, 2),
    ("á" * 134, "UCS-2", 134, 2),
    ("á" * 135, "UCS-2", 135, 3),
    ("🙂" * 35, "UCS-2", 70, 1),  # emoji are two UTF-16 units
])
def test_encoding_and_segments(text, name, units, segments):
    encoding = sms_encoding(text)
    assert (encoding.name, encoding.units, encoding.segments) == (name, units, segments)


def test_save_time_report_lists_every_template(runtime, capsys, tmp_path, monkeypatch):
    import json

    from connector.cli import main

    monkeypatch.setenv("TEXTBACK_DATABASE_URL", runtime.settings.database_url)
    monkeypatch.setenv("TEXTBACK_SECRET_KEY", runtime.settings.secret_key)
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(sandbox_account("acme", "secret")))
    assert main(["accounts", "import", str(path)]) == 0
    out = capsys.readouterr().out
    assert "template general (en): GSM-7" in out and "template general (es): UCS-2" in out
