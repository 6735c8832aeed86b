"""Text templates: the defaults for the buyer's-guide scenarios, rendering, validation and the
GSM-7 / UCS-2 segment count.

Pure functions. A template is validated when the account is saved: only known placeholders, a
first message must name the business, and no text may claim to be a person.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

PLACEHOLDERS = frozenset(
    {"business_name", "first_name", "booking_link", "emergency_number", "next_open"}
)
LANGUAGES = ("en", "es")

# Our own wording for the five scenarios of the buyer's guide, in English and Spanish.
DEFAULT_TEXTS: Mapping[str, Mapping[str, str]] = {
    "general": {
        "en": "Hi {first_name}, sorry we missed your call. This is {business_name}. "
              "What can we help you with today? Reply STOP to opt out.",
        "es": "Hola {first_name}, lamentamos no haber contestado. Le escribe {business_name}. "
              "¿En qué le podemos ayudar hoy? Responda STOP para no recibir más mensajes.",
    },
    "contractor": {
        "en": "Sorry we missed your call, this is {business_name}. Text us your address or "
              "neighborhood and what you need done, and we'll get back to you shortly. "
              "Reply STOP to opt out.",
        "es": "Lamentamos no haber contestado, le escribe {business_name}. Envíenos su dirección "
              "o barrio y lo que necesita, y le responderemos pronto. Responda STOP para no "
              "recibir más mensajes.",
    },
    "appointment": {
        "en": "Sorry we missed you! This is {business_name}. Would you like to book, reschedule "
              "or ask a question? Reply here or book at {booking_link}. Reply STOP to opt out.",
        "es": "¡Lamentamos no haber contestado! Le escribe {business_name}. ¿Desea reservar, "
              "cambiar una cita o hacer una pregunta? Responda aquí o reserve en {booking_link}. "
              "Responda STOP para no recibir más mensajes.",
    },
    "after_hours": {
        "en": "Thanks for calling {business_name}. We're closed right now and open again "
              "{next_open}. Reply here with what you need and our team will follow up. "
              "Reply STOP to opt out.",
        "es": "Gracias por llamar a {business_name}. Ahora estamos cerrados y abrimos "
              "{next_open}. Responda aquí con lo que necesita y nuestro equipo le contactará. "
              "Responda STOP para no recibir más mensajes.",
    },
    "emergency": {
        "en": "This is {business_name}, sorry we missed your call. If this is an emergency, "
              "please call {emergency_number} now. Otherwise reply with your name, address and "
              "what happened. Reply STOP to opt out.",
        "es": "Le escribe {business_name}, lamentamos no haber contestado. Si es una emergencia, "
              "llame ahora al {emergency_number}. Si no, responda con su nombre, dirección y lo "
              "que pasó. Responda STOP para no recibir más mensajes.",
    },
    "opt_out_confirmation": {
        "en": "{business_name}: you won't get more texts from us. Reply START to opt back in.",
        "es": "{business_name}: no recibirá más mensajes. Responda START para volver a recibirlos.",
    },
    "opt_in_confirmation": {
        "en": "{business_name}: you can get texts from us again. Reply STOP to opt out.",
        "es": "{business_name}: volverá a recibir nuestros mensajes. Responda STOP para dejar de "
              "recibirlos.",
    },
    "help": {
        "en": "{business_name}: this number texts you back about calls we missed. Reply here or "
              "call us back. Reply STOP to opt out.",
        "es": "{business_name}: este número le escribe sobre llamadas que no contestamos. "
              "Responda aquí o llámenos. Responda STOP para no recibir más mensajes.",
    },
}
#: Scenarios that can be the first text a caller gets: they must name the business.
FIRST_MESSAGE_SCENARIOS = ("general", "contractor", "appointment", "after_hours", "emergency")
#: What ``{first_name}`` becomes when the CRM does not know the caller's name.
NAME_FALLBACK = {"en": "there", "es": ""}

# Phrases by which a text would claim to be a person; an automated text must not. A named
# sender counts ("this is Bob from ...", "this is Bob, your plumber"), and so does saying it is
# human or not a bot. "This is {business_name}" and "this is Acme Plumbing" do not.
_PERSON_CLAIMS = re.compile(
    r"\b(my name is|i am|i'm|im here|me llamo|your (agent|rep) is"
    r"|(real|live|actual) (person|human|agent)|(i'm|i am|we're|we are) (a )?humans?"
    r"|(not|no) (a |an )?(bot|robot|machine|computer|auto-?reply|recording)s?"
    r"|not (an )?automated|persona real|(no soy|no es) (un |una )?(bot|robot|máquina|contestador))\b",
    re.IGNORECASE,
)
_NAMED_SENDER = re.compile(
    r"\b(?i:this is|it's|it is|soy|habla)\s+(?-i:[A-ZÁÉÍÓÚÑ][a-záéíóúñ]+)"
    r"(?i:\s*,\s*(a|an|your|the|tu|su|el|la)\b|\s+(from|at|with|here at|de|del)\b)"
)


class TemplateError(ValueError):
    """A template that may not be saved, with the reason."""


def placeholders_in(text: str) -> set[str]:
    """The placeholder names a template uses; a malformed brace is a TemplateError."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise TemplateError(f"malformed placeholder: {exc}") from None


def person_claim_problem(text: str) -> str | None:
    """Why ``text`` may not be sent because it claims to be a person, or None when it does not."""
    match = _PERSON_CLAIMS.search(text) or _NAMED_SENDER.search(text)
    if match is None:
        return None
    return f"texts are automated and must not claim to be a person ({match.group(0)!r})"


def validate_template(
    text: str, *, first_message: bool, business_name: str | None = None,
    person_claims: bool = True,
) -> None:
    """Refuse unknown placeholders, first messages that don't name the business, fake persons
    (unless ``person_claims`` is False: the caller checks those itself)."""
    names = placeholders_in(text)
    if "" in names:
        raise TemplateError("empty placeholder {}: name what goes there, e.g. {business_name}")
    unknown = names - PLACEHOLDERS
    if unknown:
        shown = ", ".join("{" + n + "}" for n in sorted(unknown))
        raise TemplateError(f"unknown placeholder(s): {shown}")
    if first_message and "business_name" not in names and not (
        business_name and business_name.lower() in text.lower()
    ):
        raise TemplateError("a first message must name the business: use {business_name}")
    problem = person_claim_problem(text) if person_claims else None
    if problem:
        raise TemplateError(problem)


def render(text: str, values: Mapping[str, str | None], language: str = "en") -> str:
    """Fill the placeholders; a missing first name becomes a neutral word, spaces are tidied."""
    filled = dict(values)
    if not filled.get("first_name"):
        filled["first_name"] = NAME_FALLBACK.get(language, "")
    out = text.format_map(_Missing({k: (v or "") for k, v in filled.items()}))
    out = re.sub(r" {2,}", " ", out)
    return re.sub(r"\s+([,.!?])", r"\1", out).strip()


class _Missing(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return ""


# -- SMS encoding -----------------------------------------------------------------------------

# GSM 03.38 basic character set and the extension table (each extension character costs two).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Encoding:
    """How a text goes over SMS: ``GSM-7`` or ``UCS-2``, its length in units and segments."""

    name: str
    units: int
    segments: int

    def __str__(self) -> str:
        return f"{self.name}, {self.units} characters, {self.segments} segment(s)"


def sms_encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM alphabet, else UCS-2; with the segment count.

    Single messages hold 160 GSM-7 characters or 70 UCS-2 units; concatenated ones 153 / 67 per
    segment (the rest is the concatenation header).
    """
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, multi, name = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, name = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // multi)
    return Encoding(name, units, segments)
