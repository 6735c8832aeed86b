"""The account file's schema, validated with marshmallow.

Every section has defaults, so a minimal file (id, name, carrier, crm) is complete. Unknown
fields are refused, so a typo is named rather than silently ignored.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from carrier_adapters import CARRIERS
from carrier_adapters.base import secret_fields
from connector.domain.hours import WEEKDAYS, parse_intervals
from connector.domain.templates import (
    DEFAULT_TEXTS,
    LANGUAGES,
    TemplateError,
    validate_template,
)
from connector.kernel.events import CallOutcome
from connector.kernel.phone import to_e164
from connector.settings.config import http_loopback_allowed
from crm_adapters import CRMS

#: What ``export`` writes in place of a secret; ``import`` keeps the stored value when it sees it.
REDACTED = "********"
TEXTABLE_OUTCOMES = [
    o.value for o in CallOutcome if o not in (CallOutcome.ANSWERED, CallOutcome.UNKNOWN)
]


class E164(fields.String):
    """A phone number, normalised to E.164 on load; anything unparseable is refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        number = to_e164(text)
        if number is None:
            raise ValidationError("not a valid phone number (use E.164, e.g. +14155550100)")
        return number


#: Where a provider API may be: what a refused ``api_base_url`` is told to look like.
API_URL_HINT = "must be an https URL without a user name, such as https://api.example.com"
#: Names of cloud metadata services (their addresses are refused by range below).
_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog"})
#: Addresses that are never a provider's API: link-local (cloud metadata at 169.254.169.254),
#: AWS's IPv6 metadata address and Alibaba Cloud's metadata address.
_FORBIDDEN_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
)
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)
_HOST_NAME = re.compile(r"^(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)*[^\W_](?:[\w-]{0,61}[^\W_])?$")

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


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host names literally, as the HTTP client would read it; None for a name.

    Numeric forms the resolver accepts (``2852039166``, ``0xa9.0xfe.0xa9.0xfe``, ``127.1``) are
    read the way it reads them, so they cannot slip past the checks.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def api_url_problem(value: str, *, allow_http_loopback: bool) -> str | None:
    """Why ``value`` may not be a provider's API base URL, in plain words; None when it may.

    Credentials are sent there, so it must be https to a named host, with no user name or
    password, query or fragment, and never to a link-local or cloud metadata address. Plain http
    is allowed only to this machine (127.0.0.0/8, ::1, localhost) and only with
    ``allow_http_loopback`` (``TEXTBACK_ALLOW_HTTP_LOOPBACK=true``, for local test servers).
    """
    if "\\" in value or any(ord(c) < 33 or ord(c) == 127 for c in value):
        return f"{API_URL_HINT} (no spaces, backslashes or control characters)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return f"{API_URL_HINT} (this one has a bad host or port)"
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        return API_URL_HINT
    if "@" in parts.netloc:
        return f"{API_URL_HINT} (this one names a user before the host)"
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return f"{API_URL_HINT} (this one has no host)"
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        return f"{API_URL_HINT} (no ?query or #fragment)"
    address = _host_address(host)
    if address is None and not _HOST_NAME.match(host):
        return f"{API_URL_HINT} (this one has a bad host name)"
    if host in _METADATA_HOSTS or (
        address is not None and any(address in net for net in _FORBIDDEN_NETWORKS)
    ):
        return "must not point at a link-local or cloud metadata address such as 169.254.169.254"
    if address is not None and address.is_unspecified:
        return f"{API_URL_HINT} ({host} is not an address a request can go to)"
    if scheme == "http":
        loopback = host == "localhost" or (address is not None and address.is_loopback)
        if not loopback:
            return API_URL_HINT
        if not allow_http_loopback:
            return (f"{API_URL_HINT}; plain http to this machine is for local test servers and "
                    "needs TEXTBACK_ALLOW_HTTP_LOOPBACK=true")
    return None


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


class SmsCarrierSchema(_Strict):
    """``carrier.sms``: another carrier that sends the texts (and takes replies and reports)."""

    kind = fields.String(required=True, validate=validate.OneOf(sorted(CARRIERS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    api_base_url = ApiBaseUrl(load_default=None, allow_none=True)


class CarrierSchema(_Strict):
    """``carrier``: which carrier, its credentials, the business numbers and call forwarding."""

    kind = fields.String(required=True, validate=validate.OneOf(sorted(CARRIERS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    numbers = fields.List(E164(), required=True, validate=validate.Length(min=1))
    forward_to = fields.List(E164(), load_default=list)
    ring_timeout_seconds = fields.Integer(load_default=20, validate=validate.Range(min=5, max=60))
    api_base_url = ApiBaseUrl(load_default=None, allow_none=True)
    sms = fields.Nested(SmsCarrierSchema, load_default=None, allow_none=True)

    @validates_schema
    def _needs_sms(self, data: dict[str, Any], **_: Any) -> None:
        adapter = CARRIERS.get(data.get("kind", ""))
        if adapter is not None and not adapter.sends_sms and not data.get("sms"):
            raise ValidationError(
                f"{adapter.display_name} reports calls but cannot send texts: name the SMS "
                "carrier for the same business number here", field_name="sms")


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
    task_priority = fields.String(
        load_default="HIGH", validate=validate.OneOf(["LOW", "MEDIUM", "HIGH"])
    )
    task_due_minutes = fields.Integer(load_default=15, validate=validate.Range(min=0, max=10080))
    # Housecall Pro: the new customer's notification preference, the company, the lead's tag.
    notifications_enabled = fields.Boolean(load_default=None, allow_none=True)
    company_id = fields.String(load_default=None, allow_none=True)
    lead_tag = fields.String(load_default=None, allow_none=True)
    # Jobber: the follow-up as a task (default) or an assessment on the request.
    follow_up = fields.String(load_default="task", validate=validate.OneOf(["task", "assessment"]))
    graphql_version = fields.String(load_default=None, allow_none=True)


class CrmSchema(_Strict):
    """``crm``: which CRM, its credentials and the field mapping."""

    kind = fields.String(required=True, validate=validate.OneOf(sorted(CRMS)))
    credentials = fields.Dict(keys=fields.String(), required=True)
    api_base_url = ApiBaseUrl(load_default=None, allow_none=True)
    mapping = fields.Nested(CrmMappingSchema, load_default=lambda: CrmMappingSchema().load({}))


class BusinessSchema(_Strict):
    """``business``: what the templates may mention besides the business name."""

    booking_link = fields.Url(load_default=None, allow_none=True)
    emergency_number = fields.String(load_default=None, allow_none=True)
    callback_number = E164(load_default=None, allow_none=True)


class IntervalsField(fields.List):  # type: ignore[type-arg]
    """``[["08:00", "12:00"], ["13:00", "17:00"]]``: sorted, non-overlapping, end after start."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.List(fields.String(validate=validate.Regexp(
            r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$", error="times are HH:MM")),
            validate=validate.Length(equal=2)), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        spans = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_intervals(spans)  # type: ignore[arg-type]
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
            raise ValidationError("not a date: use YYYY-MM-DD") from None


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

    weekly = fields.Dict(keys=fields.String(validate=validate.OneOf(WEEKDAYS)),
                         values=IntervalsField(), load_default=dict)
    holidays = fields.List(fields.Nested(HolidaySchema), load_default=list)
    overrides = fields.List(fields.Nested(OverrideSchema), load_default=list)


class HoursSchema(ScheduleSchema):
    """``hours``: the account's schedule, and optional schedules per business number."""

    per_number = fields.Dict(keys=E164(), values=fields.Nested(ScheduleSchema), load_default=dict)


class TemplatesSchema(_Strict):
    """``templates``: which scenario text each situation uses, and the texts (per language)."""

    language = fields.String(load_default="en", validate=validate.OneOf(LANGUAGES))
    language_by_number = fields.Dict(keys=E164(), values=fields.String(
        validate=validate.OneOf(LANGUAGES)), load_default=dict)
    missed_call = fields.String(load_default="general")
    voicemail = fields.String(load_default=None, allow_none=True)
    after_hours = fields.String(load_default="after_hours")
    texts = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$")),
        values=fields.Dict(keys=fields.String(validate=validate.OneOf(LANGUAGES)),
                           values=fields.String(validate=validate.Length(1, 1600))),
        load_default=dict,
    )

    @validates_schema
    def _check_texts(self, data: dict[str, Any], **_: Any) -> None:
        texts = {name: dict(langs) for name, langs in DEFAULT_TEXTS.items()}
        for name, langs in data.get("texts", {}).items():
            texts.setdefault(name, {}).update(langs)
        errors: dict[str, Any] = {}
        first = {data.get("missed_call"), data.get("voicemail"), data.get("after_hours")} - {None}
        for use in ("missed_call", "voicemail", "after_hours"):
            name = data.get(use)
            if name is not None and name not in texts:
                errors[use] = [f"no template named {name!r}"]
        for name, langs in data.get("texts", {}).items():
            for lang, text in langs.items():
                try:
                    validate_template(text, first_message=name in first
                                      or name in ("general", "contractor", "appointment",
                                                  "after_hours", "emergency"))
                except TemplateError as exc:
                    errors.setdefault("texts", {}).setdefault(name, {})[lang] = [str(exc)]
        if errors:
            raise ValidationError(errors)


class QuietHoursSchema(_Strict):
    """Quiet hours in the recipient's local time, and what to do inside them."""

    start = fields.String(load_default="08:00", validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
    end = fields.String(load_default="21:00", validate=validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$"))
    mode = fields.String(load_default="send", validate=validate.OneOf(["send", "hold"]))


class SpamSchema(_Strict):
    """What makes a call likely spam."""

    failed_attestation = fields.Boolean(load_default=True)
    unattested = fields.Boolean(load_default=True)
    short_calls = fields.Integer(load_default=2, validate=validate.Range(min=1, max=100))


class PolicySchema(_Strict):
    """``policy``: who gets a text, and when."""

    texted_outcomes = fields.List(fields.String(validate=validate.OneOf(TEXTABLE_OUTCOMES)),
                                  load_default=lambda: list(TEXTABLE_OUTCOMES))
    min_ring_seconds = fields.Float(load_default=3.0, validate=validate.Range(min=0, max=60))
    cooldown_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0, max=24 * 30))
    burst_window_minutes = fields.Float(load_default=15.0, validate=validate.Range(min=0, max=1440))
    text_countries = fields.List(fields.String(validate=validate.Regexp(r"^[A-Z]{2}$")),
                                 load_default=lambda: ["US", "CA"])
    internal_numbers = fields.List(E164(), load_default=list)
    blocklist = fields.List(E164(), load_default=list)
    spam = fields.Nested(SpamSchema, load_default=lambda: SpamSchema().load({}))
    send_delay_seconds = fields.Float(load_default=0.0, validate=validate.Range(min=0, max=3600))
    quiet_hours = fields.Nested(QuietHoursSchema,
                                load_default=lambda: QuietHoursSchema().load({}))
    line_type_lookup = fields.Boolean(load_default=True)
    line_type_ttl_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
    # None: trust the carrier's own behaviour (Twilio replies to STOP by itself).
    carrier_confirms_opt_out = fields.Boolean(load_default=None, allow_none=True)
    human_conversation_hours = fields.Float(load_default=12.0,
                                            validate=validate.Range(min=0, max=720))


class OwnerSchema(_Strict):
    """A person who owns follow-ups: their CRM user id, and how to reach them with alerts."""

    id = fields.String(required=True)  # the CRM's user id (HubSpot owner, Jobber user, HCP employee)
    name = fields.String(required=True)
    mobile = E164(load_default=None, allow_none=True)
    email = fields.Email(load_default=None, allow_none=True)
    alerts = fields.List(fields.String(validate=validate.OneOf(["sms", "email"])),
                         load_default=None, allow_none=True)
    away = fields.Boolean(load_default=False)

    @validates_schema
    def _reachable(self, data: dict[str, Any], **_: Any) -> None:
        for channel, field in (("sms", "mobile"), ("email", "email")):
            if channel in (data.get("alerts") or []) and not data.get(field):
                raise ValidationError(f"{channel} alerts need a {field}", field_name=field)


class EscalationSchema(_Strict):
    """``routing.escalation``: when nobody answers a customer's reply."""

    minutes = fields.Float(load_default=15.0, validate=validate.Range(min=1, max=24 * 60))
    business_hours_only = fields.Boolean(load_default=False)
    second_level_minutes = fields.Float(load_default=None, allow_none=True,
                                        validate=validate.Range(min=1, max=24 * 60))


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

    @validates_schema
    def _known_owners(self, data: dict[str, Any], **_: Any) -> None:
        ids = [o["id"] for o in data.get("owners", [])]
        if len(ids) != len(set(ids)):
            raise ValidationError("owner ids must be unique", field_name="owners")
        named = {"default_owner": data.get("default_owner"),
                 "after_hours_owner": data.get("after_hours_owner"),
                 "backup_owner": data.get("backup_owner"), "manager": data.get("manager")}
        errors = {k: [f"no owner with id {v!r}"] for k, v in named.items() if v and v not in ids}
        unknown = [v for v in [*data.get("round_robin", []), *data.get("by_number", {}).values()]
                   if v not in ids]
        if unknown:
            errors["round_robin"] = [f"no owner with id {v!r}" for v in unknown]
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
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,63}$", error="lowercase letters, digits, -"),
    )
    name = fields.String(required=True, validate=validate.Length(1, 200))
    timezone = fields.String(load_default="UTC")
    carrier = fields.Nested(CarrierSchema, required=True)
    crm = fields.Nested(CrmSchema, required=True)
    business = fields.Nested(BusinessSchema, load_default=lambda: BusinessSchema().load({}))
    hours = fields.Nested(HoursSchema, load_default=lambda: HoursSchema().load({}))
    templates = fields.Nested(TemplatesSchema, load_default=lambda: TemplatesSchema().load({}))
    policy = fields.Nested(PolicySchema, load_default=lambda: PolicySchema().load({}))
    routing = fields.Nested(RoutingSchema, load_default=lambda: RoutingSchema().load({}))

    @validates("timezone")
    def _check_tz(self, value: str, **_: Any) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("not an IANA time zone, e.g. America/Chicago") from None

    @validates_schema
    def _check_credentials(self, data: dict[str, Any], **_: Any) -> None:
        errors: dict[str, Any] = {}
        sms = (data.get("carrier") or {}).get("sms")
        sections = [("carrier", CARRIERS, data.get("carrier") or {}),
                    ("crm", CRMS, data.get("crm") or {})]
        if sms:
            sections.append(("carrier.sms", CARRIERS, sms))
        for section, registry, part in sections:
            adapter = registry.get(part.get("kind", ""))  # type: ignore[attr-defined]
            if adapter is None:
                continue
            given = part.get("credentials", {})
            redacted = tuple(k for k, v in given.items() if v == REDACTED)
            try:
                adapter.config_schema(partial=redacted).load(
                    {k: v for k, v in given.items() if v != REDACTED}, unknown=RAISE
                )
            except ValidationError as exc:
                where = errors.setdefault("carrier", {}).setdefault("sms", {}) \
                    if section == "carrier.sms" else errors.setdefault(section, {})
                where["credentials"] = exc.normalized_messages()
        if errors:
            raise ValidationError(errors)


__all__ = ["REDACTED", "AccountSchema", "api_url_problem", "http_loopback_policy", "secret_fields"]
