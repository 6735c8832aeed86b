"""The account file's schema, validated with marshmallow.

Every section has defaults, so a minimal file (id, name, carrier, crm) is complete. Unknown
fields are refused, so a typo is named rather than silently ignored.

A bad file gets every problem in one pass: the checks that span fields (credentials for the
chosen carrier and CRM, owners named by routing, template rules) run even when other fields
are wrong, reading the file as written. :func:`account_errors` gives the problems as a mapping
of readable path (``hours.weekly.mon[0] end``) to messages in the user's words, for the CLI and
for forms that show each message next to its field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from carrier_adapters import CARRIERS
from carrier_adapters.base import secret_fields
from connector.domain.hours import WEEKDAYS, parse_intervals
from connector.domain.templates import (
    DEFAULT_TEXTS,
    FIRST_MESSAGE_SCENARIOS,
    LANGUAGES,
    TemplateError,
    person_claim_problem,
    validate_template,
)
from connector.kernel.errors import ConfigurationError
from connector.kernel.events import CallOutcome
from connector.kernel.phone import to_e164
from connector.settings.api_urls import api_url_problem
from connector.settings.config import http_loopback_allowed
from crm_adapters import CRMS

#: What ``export`` writes in place of a secret; ``import`` keeps the stored value when it sees it.
REDACTED = "********"
TEXTABLE_OUTCOMES = [
    o.value for o in CallOutcome if o not in (CallOutcome.ANSWERED, CallOutcome.UNKNOWN)
]
#: What a time of day must look like, in the user's words.
TIME_HINT = "a 24-hour time such as 08:00"
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)$")


def _between(low: float, high: float) -> validate.Range:
    return validate.Range(min=low, max=high, error=f"must be a number from {low:g} to {high:g}")


def _one_of(choices: Any) -> validate.OneOf:
    return validate.OneOf(choices, error="must be one of: {choices}")


def clock_text(value: object, *, allow_midnight_end: bool = False) -> str | None:
    """``value`` as ``HH:MM`` (``8:00`` becomes ``08:00``), or None when it is not a 24-hour
    time; ``24:00`` only with ``allow_midnight_end``."""
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    hour, minute = int(match.group(1)), match.group(2)
    if hour < 24 or (allow_midnight_end and hour == 24 and minute == "00"):
        return f"{hour:02d}:{minute}"
    return None


class ClockTime(fields.String):
    """A time of day, ``HH:MM`` on the 24-hour clock."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = clock_text(super()._deserialize(value, attr, data, **kwargs))
        if text is None:
            raise ValidationError(f"{value!r} is not {TIME_HINT}")
        return text


class CountryCode(fields.String):
    """A country as its two-letter ISO 3166 code (``US``, ``CA``), in any case.

    Whether the code names a country is checked when a file is saved (:class:`AccountSchema`).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", text):
            raise ValidationError(f"{value!r} is not a two-letter country code such as US")
        return text


def _unknown_country(value: object) -> bool:
    """A two-letter code that names no country (``UK``: the United Kingdom is ``GB``)."""
    text = value.strip().upper() if isinstance(value, str) else ""
    return bool(re.fullmatch(r"[A-Z]{2}", text)) and text not in phonenumbers.SUPPORTED_REGIONS


class E164(fields.String):
    """A phone number, normalised to E.164 on load; anything unparseable is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        number = to_e164(text)
        if number is None:
            raise ValidationError("not a valid phone number (use E.164, e.g. +14155550100)")
        return number


#: Whether plain http to a loopback host is allowed for the load under way (None: ask config).
_allow_http_loopback: ContextVar[bool | None] = ContextVar("allow_http_loopback", default=None)


@contextmanager
def http_loopback_policy(allowed: bool | None) -> Iterator[None]:
    """Within the block, account validation allows (or refuses) plain http to a loopback host.

    ``None`` leaves the choice to ``TEXTBACK_ALLOW_HTTP_LOOPBACK``
    (:func:`connector.settings.config.http_loopback_allowed`).
    """
    token = _allow_http_loopback.set(allowed)
    try:
        yield
    finally:
        _allow_http_loopback.reset(token)


class ApiBaseUrl(fields.String):
    """A provider's API base URL (a test stub or proxy); see :func:`api_url_problem`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        allowed = _allow_http_loopback.get()
        if allowed is None:
            allowed = http_loopback_allowed()
        problem = api_url_problem(text, allow_http_loopback=allowed)
        if problem:
            raise ValidationError(problem)
        return text


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _written(original: Any) -> dict[str, Any]:
    """A section as written in the file; {} when it is not an object (its own error says so)."""
    return original if isinstance(original, dict) else {}


def _credential_errors(registry: Any, original: Any) -> dict[str, Any]:
    """The problems with a section's ``credentials`` for the adapter its ``kind`` names, read
    from the section as written (so they are found even when other fields are wrong)."""
    section = _written(original)
    kind = section.get("kind")
    adapter = registry.get(kind) if isinstance(kind, str) else None
    given = section.get("credentials")
    if adapter is None or not isinstance(given, dict):
        return {}
    redacted = tuple(k for k, v in given.items() if v == REDACTED)
    try:
        adapter.config_schema(partial=redacted).load(
            {k: v for k, v in given.items() if v != REDACTED}, unknown=RAISE)
    except ValidationError as exc:
        return {"credentials": exc.normalized_messages()}
    return {}


class SmsCarrierSchema(_Strict):
    """``carrier.sms``: another carrier that sends the texts (and takes replies and reports)."""

    kind = fields.String(required=True, validate=_one_of(sorted(CARRIERS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    api_base_url = ApiBaseUrl(load_default=None, allow_none=True)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_credentials(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        errors = _credential_errors(CARRIERS, original)
        if errors:
            raise ValidationError(errors)


class CarrierSchema(_Strict):
    """``carrier``: which carrier, its credentials, the business numbers and call forwarding."""

    kind = fields.String(required=True, validate=_one_of(sorted(CARRIERS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    numbers = fields.List(E164(), required=True, validate=validate.Length(
        min=1, error="list at least one business number, such as [\"+14155550100\"]"))
    forward_to = fields.List(E164(), load_default=list)
    ring_timeout_seconds = fields.Integer(load_default=20, validate=_between(5, 60))
    api_base_url = ApiBaseUrl(load_default=None, allow_none=True)
    sms = fields.Nested(SmsCarrierSchema, load_default=None, allow_none=True)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_sections(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        errors = _credential_errors(CARRIERS, original)
        kind = data.get("kind")
        adapter = CARRIERS.get(kind) if kind else None
        if adapter is not None and not adapter.sends_sms and not _written(original).get("sms"):
            errors["sms"] = [f"{adapter.display_name} reports calls but cannot send texts: "
                             "name the SMS carrier for the same business number here"]
        if errors:
            raise ValidationError(errors)


class CrmMappingSchema(_Strict):
    """``crm.mapping``: where records go in the CRM."""

    pipeline = fields.String(load_default=None, allow_none=True)
    stage = fields.String(load_default=None, allow_none=True)
    owner_id = fields.String(load_default=None, allow_none=True)
    task_queue_id = fields.String(load_default=None, allow_none=True)
    lead_source = fields.String(load_default=None, allow_none=True)
    # A link to a contact in the CRM for alerts, e.g.
    # "https://app.hubspot.com/contacts/123456/record/0-1/{contact_id}".
    record_url = fields.String(load_default=None, allow_none=True)
    task_priority = fields.String(load_default="HIGH", validate=_one_of(["LOW", "MEDIUM", "HIGH"]))
    task_due_minutes = fields.Integer(load_default=15, validate=_between(0, 10080))
    # What a missed call makes besides the contact and its call log: a follow-up task ("task"),
    # also a deal / request / lead ("lead"), or nothing more ("contact").
    creates = fields.String(load_default="lead", validate=_one_of(["contact", "task", "lead"]))
    # Housecall Pro: the new customer's notification preference, the company, the lead's tag.
    notifications_enabled = fields.Boolean(load_default=None, allow_none=True)
    company_id = fields.String(load_default=None, allow_none=True)
    lead_tag = fields.String(load_default=None, allow_none=True)
    # Jobber: the follow-up as a task (default) or an assessment on the request.
    follow_up = fields.String(load_default="task", validate=_one_of(["task", "assessment"]))
    graphql_version = fields.String(load_default=None, allow_none=True)


class CrmSchema(_Strict):
    """``crm``: which CRM, its credentials and the field mapping."""

    kind = fields.String(required=True, validate=_one_of(sorted(CRMS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    api_base_url = ApiBaseUrl(load_default=None, allow_none=True)
    mapping = fields.Nested(CrmMappingSchema, load_default=lambda: CrmMappingSchema().load({}))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_credentials(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        errors = _credential_errors(CRMS, original)
        if errors:
            raise ValidationError(errors)


class BusinessSchema(_Strict):
    """``business``: what the templates may mention besides the business name."""

    booking_link = fields.Url(load_default=None, allow_none=True)
    emergency_number = fields.String(load_default=None, allow_none=True)
    callback_number = E164(load_default=None, allow_none=True)


class IntervalsField(fields.Field):  # type: ignore[type-arg]
    """``[["08:00", "12:00"], ["13:00", "17:00"]]``: sorted, non-overlapping, end after start.

    A bad time is named by its place, ``[0] end``, which follows the field's own path.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError('must be a list of [start, end] pairs such as '
                                  '[["08:00", "12:00"], ["13:00", "17:00"]]')
        errors: dict[str, list[str]] = {}
        spans: list[list[str]] = []
        for i, span in enumerate(value):
            if not isinstance(span, list) or len(span) != 2:
                errors[f"[{i}]"] = ['must be a [start, end] pair such as ["08:00", "17:00"]']
                continue
            pair = [clock_text(span[0]), clock_text(span[1], allow_midnight_end=True)]
            for part, text, clock in zip(("start", "end"), span, pair, strict=True):
                if clock is None:
                    errors[f"[{i}] {part}"] = [f"{text!r} is not {TIME_HINT}"
                                               + (" (or 24:00 for midnight)" if part == "end" else "")]
            if None not in pair:
                spans.append([str(t) for t in pair])
        if errors:
            raise ValidationError(errors)
        try:
            parse_intervals(spans)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        return spans


class IsoDate(fields.String):
    """A calendar date kept as its ISO text (``2026-12-25``), so the account stays plain JSON."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValidationError(f"{value!r} is not a date such as 2026-12-25") from None


class HolidaySchema(_Strict):
    """A date the business is closed, with a name."""

    date = IsoDate(required=True)
    name = fields.String(required=True)


class OverrideSchema(_Strict):
    """A date with hours of its own: ``open: []`` is "closed today", more hours is "open late"."""

    date = IsoDate(required=True)
    open = IntervalsField(required=True)
    note = fields.String(load_default="")


class ScheduleSchema(_Strict):
    """One set of hours; no ``weekly`` means open around the clock."""

    weekly = fields.Dict(keys=fields.String(validate=validate.OneOf(
                             WEEKDAYS, error="not a day of the week: use {choices}")),
                         values=IntervalsField(), load_default=dict)
    holidays = fields.List(fields.Nested(HolidaySchema), load_default=list)
    overrides = fields.List(fields.Nested(OverrideSchema), load_default=list)


class HoursSchema(ScheduleSchema):
    """``hours``: the account's schedule, and optional schedules per business number."""

    per_number = fields.Dict(keys=E164(), values=fields.Nested(ScheduleSchema), load_default=dict)


class TemplatesSchema(_Strict):
    """``templates``: which scenario text each situation uses, and the texts (per language)."""

    language = fields.String(load_default="en", validate=_one_of(LANGUAGES))
    language_by_number = fields.Dict(keys=E164(), values=fields.String(
        validate=_one_of(LANGUAGES)), load_default=dict)
    missed_call = fields.String(load_default="general")
    voicemail = fields.String(load_default=None, allow_none=True)
    after_hours = fields.String(load_default="after_hours")
    texts = fields.Dict(
        keys=fields.String(validate=validate.Regexp(
            r"^[a-z][a-z0-9_]{0,39}$",
            error="not a template name: up to 40 lowercase letters, digits and _, such as "
                  "spring_offer")),
        values=fields.Dict(keys=fields.String(validate=_one_of(LANGUAGES)),
                           values=fields.String(validate=validate.Length(
                               1, 1600, error="must be 1 to 1600 characters long"))),
        load_default=dict,
    )

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_texts(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        section = _written(original)
        written = {name: langs for name, langs in _written(section.get("texts")).items()
                   if isinstance(name, str) and isinstance(langs, dict)}
        texts = {name: dict(langs) for name, langs in DEFAULT_TEXTS.items()}
        for name, langs in written.items():
            texts.setdefault(name, {}).update(langs)
        errors: dict[str, Any] = {}
        uses = {use: section.get(use, data.get(use))
                for use in ("missed_call", "voicemail", "after_hours")}
        for use, chosen in uses.items():
            if isinstance(chosen, str) and chosen not in texts:
                errors[use] = [f"no template named {chosen!r}: use one of "
                               f"{', '.join(sorted(texts))}, or add it under texts"]
        first = {chosen for chosen in uses.values() if isinstance(chosen, str)}
        for name, langs in written.items():
            for lang, text in langs.items():
                if not isinstance(text, str):
                    continue  # the field's own check names it
                try:  # person claims: see AccountSchema._saved_file_rules
                    validate_template(text, first_message=name in first
                                      or name in FIRST_MESSAGE_SCENARIOS, person_claims=False)
                except TemplateError as exc:
                    errors.setdefault("texts", {}).setdefault(name, {})[lang] = [str(exc)]
        if errors:
            raise ValidationError(errors)


class QuietHoursSchema(_Strict):
    """Quiet hours in the recipient's local time, and what to do inside them."""

    start = ClockTime(load_default="08:00")
    end = ClockTime(load_default="21:00")
    mode = fields.String(load_default="send", validate=_one_of(["send", "hold"]))


class SpamSchema(_Strict):
    """What makes a call likely spam."""

    failed_attestation = fields.Boolean(load_default=True)
    unattested = fields.Boolean(load_default=True)
    short_calls = fields.Integer(load_default=2, validate=_between(1, 100))


class PolicySchema(_Strict):
    """``policy``: who gets a text, and when."""

    texted_outcomes = fields.List(fields.String(validate=_one_of(TEXTABLE_OUTCOMES)),
                                  load_default=lambda: list(TEXTABLE_OUTCOMES))
    min_ring_seconds = fields.Float(load_default=3.0, validate=_between(0, 60))
    cooldown_hours = fields.Float(load_default=24.0, validate=_between(0, 24 * 30))
    burst_window_minutes = fields.Float(load_default=15.0, validate=_between(0, 1440))
    text_countries = fields.List(CountryCode(), load_default=lambda: ["US", "CA"])
    internal_numbers = fields.List(E164(), load_default=list)
    blocklist = fields.List(E164(), load_default=list)
    spam = fields.Nested(SpamSchema, load_default=lambda: SpamSchema().load({}))
    send_delay_seconds = fields.Float(load_default=0.0, validate=_between(0, 3600))
    quiet_hours = fields.Nested(QuietHoursSchema,
                                load_default=lambda: QuietHoursSchema().load({}))
    line_type_lookup = fields.Boolean(load_default=True)
    line_type_ttl_days = fields.Integer(load_default=30, validate=_between(1, 365))
    # None: trust the carrier's own behaviour (Twilio replies to STOP by itself).
    carrier_confirms_opt_out = fields.Boolean(load_default=None, allow_none=True)
    human_conversation_hours = fields.Float(load_default=12.0, validate=_between(0, 720))


class OwnerSchema(_Strict):
    """A person who owns follow-ups: their CRM user id, and how to reach them with alerts."""

    id = fields.String(required=True)  # the CRM's user id (HubSpot owner, Jobber user, HCP employee)
    name = fields.String(required=True)
    mobile = E164(load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True)
    alerts = fields.List(fields.String(validate=_one_of(["sms", "email"])),
                         load_default=None, allow_none=True)
    away = fields.Boolean(load_default=False)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _reachable(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        alerts = data.get("alerts") or []
        errors = {field: [f"{channel} alerts need a {field}"]
                  for channel, field in (("sms", "mobile"), ("email", "email"))
                  if channel in alerts and not _written(original).get(field)}
        if errors:
            raise ValidationError(errors)


class EscalationSchema(_Strict):
    """``routing.escalation``: when nobody answers a customer's reply."""

    minutes = fields.Float(load_default=15.0, validate=_between(1, 24 * 60))
    business_hours_only = fields.Boolean(load_default=False)
    second_level_minutes = fields.Float(load_default=None, allow_none=True,
                                        validate=_between(1, 24 * 60))


class RoutingSchema(_Strict):
    """``routing``: who owns a missed call, who hears about it, and who is next when nobody
    answers."""

    owners = fields.List(fields.Nested(OwnerSchema), load_default=list)
    default_owner = fields.String(load_default=None, allow_none=True)
    by_number = fields.Dict(keys=E164(), values=fields.String(), load_default=dict)
    after_hours_owner = fields.String(load_default=None, allow_none=True)
    round_robin = fields.List(fields.String(), load_default=list)
    backup_owner = fields.String(load_default=None, allow_none=True)
    manager = fields.String(load_default=None, allow_none=True)
    escalation = fields.Nested(EscalationSchema, load_default=lambda: EscalationSchema().load({}))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _known_owners(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        # The owners as written: an owner with a bad field still counts as named.
        written = _written(original).get("owners")
        ids = [str(o["id"]) for o in written if isinstance(o, dict) and o.get("id") is not None] \
            if isinstance(written, list) else []
        errors: dict[str, Any] = {}
        if len(ids) != len(set(ids)):
            errors["owners"] = ["owner ids must be unique"]
        known = ", ".join(sorted(ids)) or "none yet: add them under routing.owners"
        hint = f"(owners: {known})"
        for key in ("default_owner", "after_hours_owner", "backup_owner", "manager"):
            value = data.get(key)
            if value and value not in ids:
                errors[key] = [f"no owner with id {value!r} {hint}"]
        for i, value in enumerate(data.get("round_robin", [])):
            if value not in ids:
                errors.setdefault("round_robin", {})[i] = [f"no owner with id {value!r} {hint}"]
        for number, value in data.get("by_number", {}).items():
            if value not in ids:
                errors.setdefault("by_number", {})[number] = [
                    f"no owner with id {value!r} {hint}"]
        if errors:
            raise ValidationError(errors)


class AccountSchema(_Strict):
    """The whole account file.

    ``allow_http_loopback`` decides whether an ``api_base_url`` may be plain http to a loopback
    host; left ``None``, ``TEXTBACK_ALLOW_HTTP_LOOPBACK`` decides.
    """

    def __init__(self, *args: Any, allow_http_loopback: bool | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allow_http_loopback = allow_http_loopback

    def load(self, data: Any, **kwargs: Any) -> Any:
        """Validate and load an account document (every bad field reported at once)."""
        if self.allow_http_loopback is None:
            return super().load(data, **kwargs)
        with http_loopback_policy(self.allow_http_loopback):
            return super().load(data, **kwargs)

    id = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[a-z0-9][a-z0-9-]{1,63}$",
            error="2 to 64 lowercase letters, digits and dashes, such as acme-plumbing"),
    )
    name = fields.String(required=True, validate=validate.Length(
        1, 200, error="must be 1 to 200 characters long"))
    timezone = fields.String(load_default="UTC")
    carrier = fields.Nested(CarrierSchema, required=True)
    crm = fields.Nested(CrmSchema, required=True)
    business = fields.Nested(BusinessSchema, load_default=lambda: BusinessSchema().load({}))
    hours = fields.Nested(HoursSchema, load_default=lambda: HoursSchema().load({}))
    templates = fields.Nested(TemplatesSchema, load_default=lambda: TemplatesSchema().load({}))
    policy = fields.Nested(PolicySchema, load_default=lambda: PolicySchema().load({}))
    routing = fields.Nested(RoutingSchema, load_default=lambda: RoutingSchema().load({}))

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _saved_file_rules(self, data: dict[str, Any], original: Any, **_: Any) -> None:
        """Rules added after accounts were first stored: checked when a file is saved, while the
        sections read back from storage (``account_settings``) load as before, so an account
        saved under the old rules keeps working until it is next saved."""
        document = _written(original)
        errors: dict[str, Any] = {}
        texts = _written(_written(document.get("templates")).get("texts"))
        for name, langs in texts.items():
            for lang, text in _written(langs).items():
                problem = person_claim_problem(text) if isinstance(text, str) else None
                if problem:
                    errors.setdefault("templates", {}).setdefault("texts", {}).setdefault(
                        name, {})[lang] = [problem]
        countries = _written(document.get("policy")).get("text_countries")
        for i, code in enumerate(countries if isinstance(countries, list) else []):
            if _unknown_country(code):
                errors.setdefault("policy", {}).setdefault("text_countries", {})[i] = [
                    f"{code!r} names no country: use its two-letter code, such as US, CA or GB"]
        if errors:
            raise ValidationError(errors)

    @validates("timezone")
    def _check_tz(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("not an IANA time zone, e.g. America/Chicago") from None


#: marshmallow's own messages, in the user's words (adapters' credential schemas use them too).
_PLAIN_MESSAGES = {
    "Missing data for required field.": "required",
    "Field may not be null.": "may not be null: leave it out for the default",
    "Unknown field.": "not a setting here: check the spelling",
    "Not a valid string.": "must be text in quotes",
    "Not a valid integer.": "must be a whole number",
    "Not a valid number.": "must be a number",
    "Not a valid boolean.": "must be true or false",
    "Not a valid list.": "must be a list: [...]",
    "Not a valid mapping type.": "must be an object: {...}",
    "Invalid input type.": "must be an object: {...}",
    "Invalid type.": "must be an object: {...}",
    "Not a valid URL.": "must be a web address such as https://book.example.com/acme",
    "Not a valid email address.": "must be an email address such as sam@example.com",
    "String does not match expected pattern.": "is not in the expected form",
}
_PLAIN_PATTERNS = (
    (re.compile(r"^Must be greater than or equal to (\S+) and less than or equal to (\S+)\.$"),
     r"must be a number from \1 to \2"),
    (re.compile(r"^Must be greater than or equal to (\S+)\.$"), r"must be \1 or more"),
    (re.compile(r"^Must be less than or equal to (\S+)\.$"), r"must be \1 or less"),
    (re.compile(r"^Must be one of: (.*)\.$"), r"must be one of: \1"),
    (re.compile(r"^Shorter than minimum length 1\.$"), "may not be empty"),
    (re.compile(r"^Shorter than minimum length (\d+)\.$"), r"must be at least \1 long"),
    (re.compile(r"^Longer than maximum length (\d+)\.$"), r"must be at most \1 long"),
    (re.compile(r"^Length must be between (\d+) and (\d+)\.$"), r"must be \1 to \2 long"),
)


def plain_message(message: str) -> str:
    """A validation message in the user's words (marshmallow's stock wording rewritten)."""
    if message in _PLAIN_MESSAGES:
        return _PLAIN_MESSAGES[message]
    for pattern, replacement in _PLAIN_PATTERNS:
        if pattern.match(message):
            return pattern.sub(replacement, message)
    return message


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    text = str(key)
    if text.startswith("["):  # a place inside a field's value, such as "[0] end"
        return f"{path}{text}"
    return f"{path}.{text}" if path else text


def readable_errors(messages: Any, path: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages as readable path -> messages in the user's words.

    List positions read ``[0]``; the ``key`` / ``value`` levels marshmallow puts under a dict's
    entries are dropped, so ``hours.weekly.mon.value.0.1`` reads ``hours.weekly.mon[0] end``.
    A message about the whole file has the path ``account``.
    """
    out: dict[str, list[str]] = {}

    def add(where: str, found: list[str]) -> None:
        out.setdefault(where or "account", []).extend(found)

    if isinstance(messages, dict):
        entry = path and messages and set(messages) <= {"key", "value"}
        for key, value in messages.items():
            inner = path if key == "_schema" or entry else _join(path, key)
            for where, found in readable_errors(value, inner).items():
                add(where, found)
    elif isinstance(messages, list):
        for item in messages:
            if isinstance(item, str):
                add(path, [plain_message(item)])
            else:
                for where, found in readable_errors(item, path).items():
                    add(where, found)
    else:
        add(path, [plain_message(str(messages))])
    return out


class AccountFileError(ConfigurationError):
    """An account file refused: ``errors`` maps each readable path to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        lines = [f"{path}: {'; '.join(found)}" for path, found in errors.items()]
        super().__init__("account file refused, nothing written:\n  " + "\n  ".join(lines),
                         field=", ".join(errors))
        self.errors = errors


def load_account(document: Any, *, allow_http_loopback: bool | None = None,
                 partial: tuple[str, ...] = ()) -> dict[str, Any]:
    """The validated account document; AccountFileError naming every problem at once.

    ``partial``: dotted names of fields that may be missing yet (see marshmallow's ``partial``).
    """
    if not isinstance(document, dict):
        raise AccountFileError({"account": ["an account file is a JSON object: {...}"]})
    try:
        return AccountSchema(  # type: ignore[no-any-return]
            allow_http_loopback=allow_http_loopback).load(dict(document), partial=partial or False)
    except ValidationError as exc:
        raise AccountFileError(readable_errors(exc.normalized_messages())) from None


def account_errors(document: Any, *, allow_http_loopback: bool | None = None
                   ) -> dict[str, list[str]]:
    """Every problem with an account document, as readable path -> messages (empty: none)."""
    try:
        load_account(document, allow_http_loopback=allow_http_loopback)
    except AccountFileError as exc:
        return exc.errors
    return {}


__all__ = ["REDACTED", "AccountFileError", "AccountSchema", "account_errors", "api_url_problem",
           "http_loopback_policy", "load_account", "readable_errors", "secret_fields"]
