"""Which text a caller gets, in which language, with its placeholders filled."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from connector.domain.hours import BusinessHours, describe_next_open
from connector.domain.templates import DEFAULT_TEXTS, LANGUAGES, render, sms_encoding
from connector.jobs.facts import contact_profile
from connector.settings.account_settings import account_settings
from connector.storage.models import Account, ContactProfile


def account_texts(account: Account) -> dict[str, dict[str, str]]:
    """The account's templates: our defaults with its own texts laid over them."""
    texts = {name: dict(langs) for name, langs in DEFAULT_TEXTS.items()}
    for name, langs in (account.settings["templates"].get("texts") or {}).items():
        texts.setdefault(name, {}).update(langs)
    return texts


def _language(account: Account, profile: ContactProfile | None, business_number: str | None
              ) -> str:
    """The contact's language from the CRM (``profile``), else the business number's default,
    else the account's."""
    templates = account.settings["templates"]
    if profile is not None and profile.language:
        code = profile.language.split("-")[0].split("_")[0].lower()
        if code in LANGUAGES:
            return code
    by_number: Mapping[str, str] = templates.get("language_by_number") or {}
    if business_number and business_number in by_number:
        return by_number[business_number]
    return str(templates.get("language") or "en")


def compose(
    session: Session,
    account: Account,
    customer: str,
    business_number: str | None,
    scenario: str,
    now: datetime,
    *,
    text: str | None = None,
) -> tuple[str, str]:
    """``(body, language)`` of the ``scenario`` text for ``customer``; ``text`` in place of the
    account's template (a message written in a CRM workflow), with the same placeholders."""
    profile = contact_profile(session, account.id, customer)
    language = _language(account, profile, business_number)
    variants = account_texts(account).get(scenario) or DEFAULT_TEXTS["general"]
    if text is not None:
        variants = {language: text}
    if language not in variants:
        language = "en" if "en" in variants else next(iter(variants))
    hours = BusinessHours.from_settings(account.timezone, account.settings.get("hours"))
    business = account_settings(account).business
    values = {
        "business_name": account.name,
        "first_name": profile.first_name if profile else None,
        "booking_link": business.booking_link,
        "emergency_number": business.emergency_number,
        "next_open": describe_next_open(
            hours.next_open(now, business_number), now, ZoneInfo(account.timezone), language
        ),
    }
    return render(variants[language], values, language), language


SAMPLE_VALUES = {
    "first_name": "Alex",
    "booking_link": "https://book.example.com/acme",
    "emergency_number": "911",
    "next_open": "tomorrow at 8:00 AM",
}


def template_report(account: Account) -> list[str]:
    """How each text the account would send encodes: GSM-7 or UCS-2, and its segments.

    Shown when the account is saved (``textback accounts import``), with sample values for the
    placeholders the CRM or the clock fill in later.
    """
    lines = []
    for name, variants in sorted(account_texts(account).items()):
        for language, text in sorted(variants.items()):
            body = render(text, {"business_name": account.name, **SAMPLE_VALUES}, language)
            lines.append(f"template {name} ({language}): {sms_encoding(body)}")
    return lines
