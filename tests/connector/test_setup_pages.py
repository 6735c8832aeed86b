"""The setup pages through Flask's test client: who may open them, the checklist, and each
form: bad input shows the field's message and stores nothing, good input saves through the
account schema (``accounts export`` round-trips) and leaves an audit entry."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from connector.storage.accounts import export_account, validate_account
from connector.storage.models import Account, AuditEntry, SandboxRecord
from connector.storage.users import add_user
from tests.conftest import SUITE_INSTANT
from tests.connector.helpers import add_account, sandbox_account

PASSWORD = "correct horse battery"
SECRET = "a-long-enough-webhook-secret"


def sign_in(app: Any, email: str) -> Any:
    client = app.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"',
                      client.get("/login").get_data(as_text=True)).group(1)
    answer = client.post("/login", data={"email": email, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 302
    page = client.get("/conversations").get_data(as_text=True)
    client.csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return client


@pytest.fixture
def admin(app, runtime):  # type: ignore[no-untyped-def]
    add_account(runtime, sandbox_account("acme", SECRET))
    add_account(runtime, sandbox_account("other", SECRET))
    with runtime.db.session() as s:
        add_user(s, "ana@acme.test", "Ana", PASSWORD, "acme", role="admin")
        add_user(s, "rey@acme.test", "Rey", PASSWORD, "acme", role="rep")
    return sign_in(app, "ana@acme.test")


def exported(runtime: Any, account_id: str = "acme") -> dict[str, Any]:
    with runtime.db.session() as s:
        account = s.get(Account, account_id)
        return export_account(account, runtime.box)


def audit(runtime: Any) -> list[AuditEntry]:
    with runtime.db.session() as s:
        return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def post(client: Any, path: str, **data: Any) -> Any:
    return client.post(f"/accounts/acme/setup{path}", data={"csrf": client.csrf, **data})


def test_only_an_admin_of_the_account_opens_its_setup(app, admin):
    page = admin.get("/accounts/acme/setup")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for question in ("Which number should trigger the text-back?",
                     "What counts as a missed call?",
                     "Should messages change after hours or on weekends?",
                     "Who sees replies first?",
                     "What happens if nobody replies within 15 minutes?",
                     "Should the lead become a CRM contact, task, or appointment request?",
                     "What opt-out and consent language does the vendor recommend?",
                     "How will the business measure saved conversations?"):
        assert question in text
    assert admin.get("/accounts/other/setup").status_code == 404
    assert admin.get("/accounts/nope/setup/hours").status_code == 404
    rep = sign_in(app, "rey@acme.test")
    assert rep.get("/accounts/acme/setup").status_code == 403
    assert rep.get("/conversations?account=acme").status_code == 200
    assert app.test_client().get("/accounts/acme/setup").status_code == 302


def test_a_form_without_the_csrf_token_is_refused(admin, runtime):
    before = exported(runtime)
    answer = admin.post("/accounts/acme/setup/hours", data={"weekly_mon": "08:00-17:00"})
    assert answer.status_code == 400
    assert exported(runtime) == before


SMOKE = ["", "/carrier", "/missed-calls", "/hours", "/texts", "/routing", "/crm", "/consent",
         "/test"]


@pytest.mark.parametrize("path", SMOKE)
def test_every_page_renders(admin, path):
    page = admin.get(f"/accounts/acme/setup{path}")
    assert page.status_code == 200, page.get_data(as_text=True)[-2000:]


def _assert_refused(answer: Any, runtime: Any, before: dict[str, Any], *messages: str) -> str:
    """A refused form: 400, each message on the page, nothing stored, no audit entry."""
    text = answer.get_data(as_text=True)
    assert answer.status_code == 400, text[-1500:]
    assert "Nothing was saved" in text
    for message in messages:
        assert message in text, message
    assert exported(runtime) == before
    assert audit(runtime) == []
    return text


def _assert_saved(answer: Any, runtime: Any, action: str) -> dict[str, Any]:
    """A saved form: redirect, an audit entry by the admin, a document import accepts."""
    assert answer.status_code == 302, answer.get_data(as_text=True)[-1500:]
    entries = audit(runtime)
    assert entries[-1].action == action and entries[-1].user_email == "ana@acme.test"
    doc = exported(runtime)
    validate_account(doc)  # ``accounts export`` after the page round-trips through import
    return doc


def test_missed_calls_form(admin, runtime):
    before = exported(runtime)
    bad = post(admin, "/missed-calls", texted_outcomes="no-answer", min_ring_seconds="soon",
               ring_timeout_seconds="99", cooldown_hours="24", send_delay_seconds="0",
               forward_to="not a phone")
    text = _assert_refused(bad, runtime, before, "must be a number", "phone number")
    assert 'id="min_ring" name="min_ring_seconds" inputmode="decimal" value="soon" ' \
           'aria-invalid="true"' in text  # the typed value is shown again, marked
    assert "must be a number from 5 to 60" in text
    good = post(admin, "/missed-calls", texted_outcomes=["no-answer", "busy"],
                min_ring_seconds="5", ring_timeout_seconds="25", cooldown_hours="12",
                send_delay_seconds="30", forward_to="+14155550199")
    doc = _assert_saved(good, runtime, "missed calls")
    assert doc["policy"]["texted_outcomes"] == ["no-answer", "busy"]
    assert doc["policy"]["min_ring_seconds"] == 5 and doc["carrier"]["ring_timeout_seconds"] == 25
    fields = {c["field"]: c for c in audit(runtime)[-1].changes}
    assert fields["policy.min_ring_seconds"] == {"field": "policy.min_ring_seconds",
                                                 "before": 3.0, "after": 5.0}


def test_hours_form_split_shifts_holidays_overrides_and_open_now(frozen_clock, app, admin,
                                                                 runtime):
    frozen_clock.move_to(SUITE_INSTANT)  # the times asserted below are this instant's
    admin = sign_in(app, "ana@acme.test")  # a sign-in from before the move may have lapsed
    before = exported(runtime)
    bad = post(admin, "/hours", timezone="Mars/Olympus", weekly_mon="8 till 5",
               weekly_tue="17:00-08:00", holidays="2026-13-45 Nonsense", overrides="")
    _assert_refused(bad, runtime, before, "not an IANA time zone",
                    "write hours as 08:00-12:00, 13:00-17:00",
                    "the end must be after the start", "is not a date such as 2026-12-25")
    good = post(admin, "/hours", timezone="America/Chicago",
                weekly_mon="8:00-12:00, 13:00-17:00", weekly_tue="08:00-17:00",
                holidays="2026-12-25 Christmas Day",
                overrides="2026-12-24 08:00-12:00 Christmas Eve\n2026-12-31 closed")
    doc = _assert_saved(good, runtime, "hours")
    assert doc["hours"]["weekly"] == {"mon": [["08:00", "12:00"], ["13:00", "17:00"]],
                                      "tue": [["08:00", "17:00"]]}
    assert doc["hours"]["holidays"] == [{"date": "2026-12-25", "name": "Christmas Day"}]
    assert doc["hours"]["overrides"][1] == {"date": "2026-12-31", "open": [], "note": ""}
    # The suite's clock: Monday 2026-06-15 12:00 UTC is 07:00 in Chicago, before opening.
    page = admin.get("/accounts/acme/setup/hours").get_data(as_text=True)
    assert "<strong>closed</strong>, next opens today at 8:00 AM" in page
    assert 'value="08:00-12:00, 13:00-17:00"' in page


def test_hours_of_one_business_number(admin, runtime):
    answer = admin.post("/accounts/acme/setup/hours?number=%2B14155550100",
                        data={"csrf": admin.csrf, "weekly_sat": "09:00-13:00"})
    doc = _assert_saved(answer, runtime, "hours")
    assert doc["hours"]["per_number"] == {
        "+14155550100": {"weekly": {"sat": [["09:00", "13:00"]]}, "holidays": [],
                         "overrides": []}}
    assert doc["hours"]["weekly"] == {}
    answer = admin.post("/accounts/acme/setup/hours?number=%2B14155550100",
                        data={"csrf": admin.csrf, "same_as_account": "1"})
    assert _assert_saved(answer, runtime, "hours")["hours"]["per_number"] == {}


TEXT_FORM = {"language": "en", "missed_call": "general", "after_hours": "after_hours",
             "voicemail": "", "booking_link": "", "emergency_number": "", "callback_number": ""}


def test_texts_form_refuses_what_import_refuses(admin, runtime):
    before = exported(runtime)
    bad = post(admin, "/texts", **dict(TEXT_FORM, booking_link="not a link"),
               text_general_en="Sorry we missed you! {nickname} here.",
               text_contractor_es="{business_name}: me llamo Roberto. Responda STOP.")
    _assert_refused(bad, runtime, before, "unknown placeholder(s): {nickname}",
                    "must not claim to be a person", "must be a web address")
    good = post(admin, "/texts", **dict(TEXT_FORM, language="es"),
                text_general_en="Sorry we missed your call, {business_name} here. "
                                "What do you need? Reply STOP to opt out.")
    doc = _assert_saved(good, runtime, "texts")
    assert doc["templates"]["language"] == "es"
    assert doc["templates"]["texts"] == {"general": {"en": (
        "Sorry we missed your call, {business_name} here. What do you need? "
        "Reply STOP to opt out.")}}  # only what differs from our own wording is stored


def test_live_preview_counts_segments_as_you_type(admin):
    gsm = admin.get("/accounts/acme/setup/texts/preview",
                    query_string={"text_general_en": "Hi from {business_name}!"})
    text = gsm.get_data(as_text=True)
    assert "Hi from Acme Plumbing!" in text and "GSM-7 · 22 characters · 1 segment" in text
    ucs = admin.get("/accounts/acme/setup/texts/preview",
                    query_string={"text_general_es": "¿Qué tal? {business_name} 😀 " * 4})
    assert "UCS-2" in ucs.get_data(as_text=True) and "2 segments" in ucs.get_data(as_text=True)
    bad = admin.get("/accounts/acme/setup/texts/preview",
                    query_string={"text_general_en": "Hello {nickname}"})
    assert "unknown placeholder(s): {nickname}" in bad.get_data(as_text=True)


def test_consent_form(admin, runtime):
    before = exported(runtime)
    bad = post(admin, "/consent", who_answers="textback",
               text_opt_out_confirmation_en="Bye {nickname}")
    _assert_refused(bad, runtime, before, "unknown placeholder(s): {nickname}")
    page = admin.get("/accounts/acme/setup/consent").get_data(as_text=True)
    assert "does not answer STOP, START and HELP by itself" in page
    good = post(admin, "/consent", who_answers="textback",
                text_help_en="{business_name}: we text back missed calls. Reply STOP to opt out.")
    doc = _assert_saved(good, runtime, "consent")
    assert doc["policy"]["carrier_confirms_opt_out"] is False
    assert doc["templates"]["texts"]["help"]["en"].startswith("{business_name}: we text back")


def test_routing_form_offers_the_crms_users(admin, runtime):
    page = admin.get("/accounts/acme/setup/routing").get_data(as_text=True)
    assert "Alex Rivera (owner)" in page and "Sam Lee" in page
    before = exported(runtime)
    bad = post(admin, "/routing", owner=["owner-1"], **{"alerts_owner-1": "sms"},
               default_owner="owner-2", escalation_minutes="0")
    _assert_refused(bad, runtime, before, "sms alerts need a mobile",
                    "must be a number from 1 to")
    bad = post(admin, "/routing", owner=["owner-1"], default_owner="owner-2",
               escalation_minutes="15")
    _assert_refused(bad, runtime, before, "no owner with id &#39;owner-2&#39;")
    good = post(admin, "/routing", owner=["owner-1", "owner-2"],
                **{"mobile_owner-1": "+14155550111", "alerts_owner-1": "sms",
                   "email_owner-2": "sam@acme.test", "alerts_owner-2": "email"},
                default_owner="owner-1", after_hours_owner="owner-2", backup_owner="owner-2",
                round_robin=["owner-1", "owner-2"], escalation_minutes="15",
                second_level_minutes="")
    doc = _assert_saved(good, runtime, "routing")
    routing = doc["routing"]
    assert [o["name"] for o in routing["owners"]] == ["Alex Rivera (owner)", "Sam Lee"]
    assert routing["default_owner"] == "owner-1" and routing["backup_owner"] == "owner-2"
    assert routing["owners"][0]["mobile"] == "+14155550111"


def test_crm_test_connection_and_mapping_from_its_lists(admin, runtime):
    tested = post(admin, "/crm", action="test")
    text = tested.get_data(as_text=True)
    assert tested.status_code == 200 and "Connected</strong> to Sandbox CRM" in text
    assert "✓ may create follow-up tasks" in text
    assert audit(runtime)[-1].changes[0]["after"] == "ok"
    page = admin.get("/accounts/acme/setup/crm").get_data(as_text=True)
    assert "Sales pipeline" in page and "New lead" in page
    before = exported(runtime)
    entries = len(audit(runtime))
    bad = post(admin, "/crm", action="mapping", creates="task", pipeline="typed-by-hand",
               stage="new", owner_id="owner-1", task_priority="HIGH", task_due_minutes="15")
    assert bad.status_code == 400 and "choose one of the CRM" in bad.get_data(as_text=True)
    assert exported(runtime) == before and len(audit(runtime)) == entries
    good = post(admin, "/crm", action="mapping", creates="task", pipeline="default",
                stage="contacted", owner_id="owner-2", task_priority="MEDIUM",
                task_due_minutes="30")
    doc = _assert_saved(good, runtime, "crm")
    mapping = doc["crm"]["mapping"]
    assert (mapping["creates"], mapping["stage"], mapping["owner_id"]) == \
        ("task", "contacted", "owner-2")


def test_carrier_credentials_are_checked_before_they_are_stored(admin, runtime):
    before = exported(runtime)
    bad = post(admin, "/carrier", action="credentials", kind="sandbox",
               cred_webhook_secret="short")
    _assert_refused(bad, runtime, before, "refused the credentials")
    good = post(admin, "/carrier", action="credentials", kind="sandbox",
                cred_webhook_secret="another-long-webhook-secret",
                cred_owned_numbers="+14155550100, +14155550101")
    _assert_saved(good, runtime, "carrier")
    with runtime.db.session() as s:
        creds = runtime.box.open(s.get(Account, "acme").carrier_credentials)
    assert creds["webhook_secret"] == "another-long-webhook-secret"
    assert audit(runtime)[-1].changes == [  # secrets are never kept in the audit trail
        {"field": "carrier.credentials.owned_numbers", "before": None, "after": "changed"},
        {"field": "carrier.credentials.webhook_secret", "before": None, "after": "changed"}]


def test_an_account_without_a_number_saves_its_first_with_the_carrier(admin, runtime):
    """An account a CRM install made has no number yet; the account is saved whole, so the
    carrier form takes the first number with the credentials instead of refusing them."""
    with runtime.db.session() as s:
        account = s.get(Account, "acme")
        account.settings = {**account.settings,
                            "carrier": {**account.settings["carrier"], "numbers": []}}
        s.commit()
    page = admin.get("/accounts/acme/setup/carrier").get_data(as_text=True)
    assert 'name="first_number"' in page
    before = exported(runtime)
    _assert_refused(post(admin, "/carrier", action="credentials", kind="sandbox",
                         cred_webhook_secret="another-long-webhook-secret"), runtime, before)
    good = post(admin, "/carrier", action="credentials", kind="sandbox",
                cred_webhook_secret="another-long-webhook-secret", first_number="+14155550123")
    assert _assert_saved(good, runtime, "carrier")["carrier"]["numbers"] == ["+14155550123"]
    page = admin.get("/accounts/acme/setup/carrier").get_data(as_text=True)
    assert 'name="first_number"' not in page  # more numbers are added in their own section


def test_carrier_numbers_listed_and_webhooks_pointed(admin, runtime):
    page = admin.get("/accounts/acme/setup/carrier").get_data(as_text=True)
    assert "+14155550101" in page and "Sandbox line 2" in page
    answer = post(admin, "/carrier", action="numbers", numbers=["+14155550100", "+14155550102"])
    assert _assert_saved(answer, runtime, "carrier numbers")["carrier"]["numbers"] == [
        "+14155550100", "+14155550102"]
    before = exported(runtime)
    refused = post(admin, "/carrier", action="numbers")
    assert refused.status_code == 400 and "pick at least one number" in \
        refused.get_data(as_text=True)
    assert exported(runtime) == before
    pointed = post(admin, "/carrier", action="point")
    text = pointed.get_data(as_text=True)
    assert pointed.status_code == 200
    assert "https://hooks.example.test/webhooks/sandbox/acme/voice" in text
    entry = audit(runtime)[-1]
    assert entry.action == "carrier webhooks" and len(entry.changes) >= 2
    after = admin.get("/accounts/acme/setup/carrier").get_data(as_text=True)
    assert after.count("reaches textback") == 2


def test_test_text_and_simulated_call(admin, runtime):
    bad = post(admin, "/test", action="send", phone="call me")
    assert bad.status_code == 400 and "your mobile number" in bad.get_data(as_text=True)
    sent = post(admin, "/test", action="send", phone="(415) 555-0177", number="+14155550100")
    assert sent.status_code == 200 and "accepted the test text" in sent.get_data(as_text=True)
    with runtime.db.session() as s:
        texts = [r.data for r in s.scalars(select(SandboxRecord).where(
            SandboxRecord.account_id == "acme", SandboxRecord.kind == "sms"))]
    assert texts[-1]["to"] == "+14155550177" and "Test text from Acme Plumbing" in \
        texts[-1]["body"]
    simulated = post(admin, "/test", action="simulate", phone="+14155550177")
    assert simulated.status_code == 302
    page = admin.get(simulated.headers["Location"]).get_data(as_text=True)
    assert "What happened, step by step" in page and "texted" in page
    assert 'id="crm-records"' in page and "contact" in page


@pytest.mark.parametrize(("creates", "made"), [
    ("contact", {"contact": 1, "call": 1, "task": 0, "lead": 0}),
    ("task", {"contact": 1, "call": 1, "task": 1, "lead": 0}),
    ("lead", {"contact": 1, "call": 1, "task": 1, "lead": 1}),
])
def test_what_a_missed_call_creates_in_the_crm(app, runtime, webhook_secret, creates, made):
    from tests.connector.helpers import missed, records
    from tests.connector.helpers import post as post_webhook

    doc = sandbox_account("acme", webhook_secret)
    doc["crm"]["mapping"]["creates"] = creates
    add_account(runtime, doc)
    assert post_webhook(app.test_client(), "acme", "voice", missed(), webhook_secret)\
        .status_code < 300
    assert {kind: len(records(runtime, "acme", kind)) for kind in made} == made


def test_an_admin_has_a_setup_link_and_a_rep_does_not(app, admin):
    assert 'href="/accounts/acme/setup">Setup</a>' in admin.get("/conversations")\
        .get_data(as_text=True)
    rep = sign_in(app, "rey@acme.test")
    assert ">Setup</a>" not in rep.get("/conversations").get_data(as_text=True)


def test_switch_to_twilio_checked_listed_and_pointed(admin, runtime):
    """The carrier page against a stateful fake of Twilio's REST API: a wrong token is named and
    nothing stored; the right one switches the account; its numbers are listed; one button sets
    their webhooks and shows each setting before and after."""
    import responses

    from tests.stubs.twilio_numbers import TwilioNumbersFake

    sid, token, api = "AC" + "2" * 32, "twilio-auth-token-for-setup", "https://twilio-api.test"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        twilio = TwilioNumbersFake(sid, token, ["+14155550100", "+14155550188"])
        twilio.install(http, api)
        page = admin.get("/accounts/acme/setup/carrier?kind=twilio").get_data(as_text=True)
        assert "Account SID (starts with AC)" in page and "Saving switches this account" in page
        before = exported(runtime)
        bad = post(admin, "/carrier", action="credentials", kind="twilio",
                   cred_account_sid=sid, cred_auth_token="wrong-token", api_base_url=api)
        text = _assert_refused(bad, runtime, before)
        assert re.findall(r'<p class="error" role="alert">([^<]*)</p>', text) == [
            "Twilio refused the credentials (HTTP 401): check the Account SID and Auth Token "
            "(Twilio Console, Account Info), or the API key SID and secret"]
        good = post(admin, "/carrier", action="credentials", kind="twilio",
                    cred_account_sid=sid, cred_auth_token=token, api_base_url=api)
        assert _assert_saved(good, runtime, "carrier")["carrier"]["kind"] == "twilio"
        page = admin.get("/accounts/acme/setup/carrier").get_data(as_text=True)
        assert "+14155550188" in page
        _assert_saved(post(admin, "/carrier", action="numbers", numbers=["+14155550188"]),
                      runtime, "carrier numbers")
        pointed = post(admin, "/carrier", action="point")
        assert pointed.status_code == 200
        assert twilio.numbers["+14155550188"]["sms_url"] == \
            "https://hooks.example.test/webhooks/twilio/acme/sms"
        assert "https://hooks.example.test/webhooks/twilio/acme/voice" in \
            pointed.get_data(as_text=True)
        assert audit(runtime)[-1].action == "carrier webhooks"


def test_an_admin_creates_an_account_in_the_browser(app, admin, runtime):
    rep = sign_in(app, "rey@acme.test")
    assert rep.get("/accounts/new").status_code == 403
    bad = admin.post("/accounts/new", data={"csrf": admin.csrf, "name": "", "id": "Bad Id!",
                                            "timezone": "Moon/Base"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert 'id="name-error"' in text and 'id="id-error"' in text and "IANA time zone" in text
    taken = admin.post("/accounts/new", data={"csrf": admin.csrf, "name": "Other",
                                              "id": "other", "timezone": "UTC"})
    assert taken.status_code == 400 and "an account with this id exists" in \
        taken.get_data(as_text=True)
    with runtime.db.session() as s:
        assert s.get(Account, "bright-plumbing-co") is None
    made = admin.post("/accounts/new", data={"csrf": admin.csrf, "name": "Bright Plumbing & Co",
                                             "id": "", "timezone": "America/Denver"})
    assert made.status_code == 302
    assert made.headers["Location"] == "/accounts/bright-plumbing-co/setup"
    page = admin.get("/accounts/bright-plumbing-co/setup")  # its creator belongs to it
    assert page.status_code == 200 and "0 of 8" in page.get_data(as_text=True)
    doc = exported(runtime, "bright-plumbing-co")
    assert (doc["carrier"]["kind"], doc["crm"]["kind"], doc["timezone"]) == \
        ("sandbox", "sandbox", "America/Denver")
    assert rep.get("/accounts/bright-plumbing-co/setup").status_code == 404


def test_a_problem_without_a_field_on_the_page_is_still_shown(admin, runtime):
    """CallRail reports calls but sends no texts: the account needs an SMS carrier, which this
    form has no field for; the summary names it rather than hiding it."""
    before = exported(runtime)
    answer = post(admin, "/carrier", action="credentials", kind="callrail")
    text = _assert_refused(answer, runtime, before, "cannot send texts")
    assert '<span class="id">carrier.sms</span>' in text


def test_consent_explains_twilios_own_keyword_replies(app, runtime):
    from tests.connector.test_accounts import TWILIO_HUBSPOT

    add_account(runtime, TWILIO_HUBSPOT)
    with runtime.db.session() as s:
        add_user(s, "ops@acme.test", "Ops", PASSWORD, None, role="admin")
    ops = sign_in(app, "ops@acme.test")
    page = ops.get("/accounts/acme-plumbing/setup/consent").get_data(as_text=True)
    assert "Twilio answers STOP, START and HELP itself" in page
    assert "Its default HELP reply does not name your business" in page
    assert 'value="default" checked' in page


def test_a_rep_cannot_change_the_setup(app, admin, runtime):
    rep = sign_in(app, "rey@acme.test")
    before = exported(runtime)
    answer = rep.post("/accounts/acme/setup/hours",
                      data={"csrf": rep.csrf, "weekly_mon": "08:00-17:00", "timezone": "UTC"})
    assert answer.status_code == 403
    assert exported(runtime) == before and audit(runtime) == []


def test_a_number_added_after_pointing_needs_attention(admin, runtime):
    def first_state() -> str:
        page = admin.get("/accounts/acme/setup").get_data(as_text=True)
        return re.findall(r'<mark class="badge state-([a-z-]+)"', page)[0]

    assert first_state() == "not-started"
    post(admin, "/carrier", action="point")
    assert first_state() == "done"
    post(admin, "/carrier", action="numbers", numbers=["+14155550100", "+14155550101"])
    assert first_state() == "needs-attention"
    post(admin, "/carrier", action="point")
    assert first_state() == "done"


def test_a_crm_app_not_set_up_on_this_deployment_is_named_not_a_500(admin, runtime):
    """An account on HubSpot's marketplace app where this deployment has no app secret: the CRM
    and routing pages say what is missing, and testing the connection says it too."""
    with runtime.db.session() as s:
        account = s.get(Account, "acme")
        account.settings = {**account.settings,
                            "crm": {**account.settings["crm"], "kind": "hubspot", "mapping": {}}}
        account.crm_kind = "hubspot"
        account.crm_credentials = runtime.box.seal({"client_id": "app-client-id"})
        s.commit()
    for path in ("/crm", "/routing", ""):
        page = admin.get(f"/accounts/acme/setup{path}")
        assert page.status_code == 200, path
    assert "TEXTBACK_HUBSPOT_CLIENT_SECRET" in admin.get("/accounts/acme/setup/crm")\
        .get_data(as_text=True)
    tested = post(admin, "/crm", action="test")
    assert tested.status_code == 400
    assert "TEXTBACK_HUBSPOT_CLIENT_SECRET" in tested.get_data(as_text=True)
