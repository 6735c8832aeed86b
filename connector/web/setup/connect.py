"""Connecting the carrier and the CRM: credentials checked with the provider before anything is
stored, the carrier's numbers listed to pick from, webhooks pointed at textback (or the exact URLs
to paste), the CRM's own lists offered as choices, and a "test connection"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import marshmallow
from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from carrier_adapters import CARRIERS
from carrier_adapters.base import secret_fields
from carrier_adapters.provisioning import WebhookUrls, webhook_urls
from connector.kernel.errors import ConfigurationError, CredentialsRejectedError, ProviderError
from connector.runtime import Runtime
from connector.settings.account_schema import REDACTED
from connector.storage.installations import connection_state, credentials_auth
from connector.storage.models import Account
from connector.web.oauth import install_link
from connector.web.pages import login_required
from connector.web.setup.access import admin_account, runtime
from connector.web.setup.blueprint import bp
from connector.web.setup.forms import add_error, lines_of
from connector.web.setup.saving import FieldErrors, current_document, record, save_document
from crm_adapters import CRMS
from crm_adapters.catalog import CrmChoices


@dataclass(frozen=True)
class CredentialField:
    """One credential input: its name, whether it is secret, required, or a list."""

    name: str
    label: str
    secret: bool
    required: bool
    is_list: bool
    is_bool: bool


def credential_fields(schema: type[marshmallow.Schema]) -> list[CredentialField]:
    """The inputs a provider's credential schema asks for, in its order."""
    secret = secret_fields(schema)
    return [CredentialField(name, str(f.metadata.get("description") or name.replace("_", " ")),
                            name in secret, bool(f.required),
                            isinstance(f, marshmallow.fields.List),
                            isinstance(f, marshmallow.fields.Boolean))
            for name, f in schema().fields.items()]


def _read_credentials(form: MultiDict[str, str], fields: list[CredentialField],
                      stored: dict[str, Any], same_kind: bool) -> dict[str, Any]:
    """The credentials typed in the form; a secret left empty keeps the stored one."""
    creds: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f"cred_{f.name}", "").strip()
        if f.is_bool:
            creds[f.name] = bool(raw)
        elif f.secret and not raw and same_kind and f.name in stored:
            creds[f.name] = REDACTED  # import keeps the stored value
        elif f.is_list:
            if raw:
                creds[f.name] = [item.strip() for item in raw.replace(",", "\n").splitlines()
                                 if item.strip()]
        elif raw:
            creds[f.name] = raw
    return creds


def _opened(document_creds: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    return {k: stored.get(k) if v == REDACTED else v for k, v in document_creds.items()}


def _provider_problem(exc: Exception, what: str) -> str:
    if isinstance(exc, CredentialsRejectedError):
        return str(exc)
    if isinstance(exc, ProviderError):
        return f"could not reach {what} to check: {exc}. Nothing was saved; try again."
    raise exc


# -- the carrier ---------------------------------------------------------------------------------

def _urls(rt: Runtime, account: Account) -> WebhookUrls:
    return webhook_urls(rt.settings.public_url, account.carrier_kind, account.id)


def _call_handling(account: Account) -> str:
    return "forward" if account.settings["carrier"].get("forward_to") else "watch"


@bp.route("/carrier", methods=["GET", "POST"])
@login_required
def carrier(account_id: str) -> Any:
    """The carrier, its credentials, the business numbers picked from the carrier's list, and
    its webhooks."""
    rt = runtime()
    with rt.db.session() as s:
        account, user = admin_account(s, account_id)
        kind = request.values.get("kind") or account.carrier_kind
        if kind not in CARRIERS:
            kind = account.carrier_kind
        errors: FieldErrors = {}
        changes: list[dict[str, Any]] | None = None
        action = request.form.get("action") if request.method == "POST" else None
        if action == "credentials":
            errors = _save_provider(rt, s, account, user.email, "carrier", kind)
            if not errors:
                flash(f"{CARRIERS[kind].display_name} accepted the credentials; they are saved.")
                return redirect(url_for("setup.carrier", account_id=account.id))
        elif action == "numbers":
            errors = save_document(s, rt.box, account, user.email, "carrier numbers",
                                   lambda doc: _edit_numbers(doc, request.form))
            if not errors:
                flash("Business numbers saved.")
                return redirect(url_for("setup.carrier", account_id=account.id))
        elif action == "point":
            changes, problem = _point(rt, account)
            if problem:
                errors = {"webhooks": [problem]}
            else:
                record(s, account.id, user.email, "carrier webhooks", changes)
        elif action == "pasted":
            record(s, account.id, user.email, "carrier webhooks",
                   [{"field": "webhook URLs", "before": None, "after": "pasted by an admin"}])
            flash("Noted: the webhook URLs are pasted in the carrier's console.")
            return redirect(url_for("setup.carrier", account_id=account.id))
        adapter_cls = CARRIERS[account.carrier_kind]
        owned, list_problem = _owned_numbers(rt, account)
        urls = _urls(rt, account)
        html = render_template(
            "setup/carrier.html", account=account, errors=errors,
            form=request.form if errors else None, kind=kind, carriers=CARRIERS,
            fields=credential_fields(CARRIERS[kind].config_schema),
            stored=current_document(account, rt.box)["carrier"]["credentials"]
            if kind == account.carrier_kind else {},
            adapter=adapter_cls, owned=owned, list_problem=list_problem, urls=urls,
            paste=adapter_cls.webhook_settings(urls, calls=_call_handling(account)),  # type: ignore[arg-type]
            changes=changes, numbers=account.settings["carrier"]["numbers"],
            api_base_url=account.settings["carrier"].get("api_base_url") or "")
        return (html, 400) if errors else html


def _save_provider(rt: Runtime, s: Any, account: Account, email: str, section: str,
                   kind: str) -> FieldErrors:
    """Store the ``carrier`` or ``crm`` section's provider and credentials from the form, once
    the provider accepted them (an OAuth CRM's app credentials are proven by its install)."""
    registry: Any = CARRIERS if section == "carrier" else CRMS
    cls = registry[kind]
    current = account.carrier_kind if section == "carrier" else account.crm_kind
    same = kind == current
    sealed = account.carrier_credentials if section == "carrier" else account.crm_credentials
    stored = rt.box.open(sealed) if same else {}
    creds = _read_credentials(request.form, credential_fields(cls.config_schema), stored, same)

    def edit(doc: dict[str, Any]) -> FieldErrors:
        part = doc[section]
        if section == "crm" and not same:
            part["mapping"] = {}  # the old CRM's pipeline and owner ids mean nothing here
        part["kind"], part["credentials"] = kind, creds
        part["api_base_url"] = request.form.get("api_base_url", "").strip() or None
        first_number = request.form.get("first_number", "").strip()
        if section == "carrier" and not part.get("numbers") and first_number:
            part["numbers"] = [first_number]  # a new account's first number, with its carrier
        return {}

    def check(doc: dict[str, Any]) -> FieldErrors:
        opened = _opened(creds, stored)
        try:
            adapter = rt.adapter_from(section, account.id, account.timezone, dict(doc[section]),
                                      opened)
        except ConfigurationError as exc:  # e.g. the CRM app's own settings are missing here
            return {exc.field or f"{section}.credentials": [str(exc)]}
        try:
            if section == "carrier":
                if not cls.can_check_credentials:
                    return {}
                adapter.check_credentials()
            elif credentials_auth(kind, opened) == "token" or _installed(s, account, kind):
                adapter.check_connection()
        except NotImplementedError:
            return {}
        except ProviderError as exc:
            return {f"{section}.credentials": [_provider_problem(exc, cls.display_name)]}
        return {}

    return save_document(s, rt.box, account, email, section, edit, check)


def _installed(s: Any, account: Account, kind: str) -> bool:
    return kind == account.crm_kind and connection_state(s, account.id).status == "connected"


def _edit_numbers(doc: dict[str, Any], form: MultiDict[str, str]) -> FieldErrors:
    picked = form.getlist("numbers") + lines_of(form.get("typed_numbers", ""))
    errors: FieldErrors = {}
    if not picked:
        add_error(errors, "carrier.numbers", "pick at least one number customers call")
    doc["carrier"]["numbers"] = list(dict.fromkeys(picked))
    return errors


def _owned_numbers(rt: Runtime, account: Account) -> tuple[list[Any], str | None]:
    cls = CARRIERS[account.carrier_kind]
    if not cls.can_list_numbers:
        return [], None
    try:
        return rt.carrier_for(account).list_numbers(), None
    except (ProviderError, ConfigurationError) as exc:
        return [], f"{cls.display_name} did not list the numbers: {exc}"


def _point(rt: Runtime, account: Account) -> tuple[list[dict[str, Any]], str | None]:
    try:
        adapter = rt.carrier_for(account)
    except ConfigurationError as exc:
        return [], str(exc)
    if not adapter.can_point_webhooks:
        return [], f"{adapter.display_name} cannot be pointed through its API: paste the URLs."
    changes: list[dict[str, Any]] = []
    try:
        for number in account.settings["carrier"]["numbers"]:
            for change in adapter.point_webhooks(number, _urls(rt, account),
                                                 calls=_call_handling(account)):  # type: ignore[arg-type]
                changes.append({"field": f"{number} {change.field}", "before": change.before,
                                "after": change.after})
    except ProviderError as exc:
        return changes, f"{adapter.display_name} refused: {exc}"
    return changes, None


# -- the CRM ---------------------------------------------------------------------------------------

def crm_choices(rt: Runtime, account: Account) -> tuple[CrmChoices | None, str | None]:
    """The CRM's lists (pipelines, owners ...), or why they could not be read."""
    try:
        return rt.crm_for(account).list_choices(), None
    except NotImplementedError:
        return None, f"{account.crm_kind} does not list its records through its API."
    except ConfigurationError as exc:  # not connected yet, or the CRM app is not set up here
        return None, f"Could not read the lists from {account.crm_kind}: {exc}"
    except ProviderError as exc:
        return None, f"Could not read the lists from {account.crm_kind}: {exc}"


@bp.route("/crm", methods=["GET", "POST"])
@login_required
def crm(account_id: str) -> Any:
    """The CRM connection (OAuth or token), a test of it, and where a missed call's records go,
    chosen from the CRM's own lists."""
    rt = runtime()
    with rt.db.session() as s:
        account, user = admin_account(s, account_id)
        errors: FieldErrors = {}
        check = None
        action = request.form.get("action") if request.method == "POST" else None
        kind = request.values.get("kind") or account.crm_kind
        if kind not in CRMS:
            kind = account.crm_kind
        if action == "credentials":
            errors = _save_provider(rt, s, account, user.email, "crm", kind)
            if not errors:
                flash(f"{CRMS[kind].display_name}: the credentials are saved.")
                return redirect(url_for("setup.crm", account_id=account.id))
        elif action == "test":
            check, problem = _test_crm(rt, account)
            if problem:
                errors = {"connection": [problem]}
            if check is not None:
                result = "ok" if check.ok else "refused: " + ", ".join(
                    p.action for p in check.refused)
            else:
                result = problem or "no answer"
            record(s, account.id, user.email, "crm test",
                   [{"field": "result", "before": None, "after": result}])
        choices, list_problem = crm_choices(rt, account)
        if action == "mapping":
            errors = save_document(s, rt.box, account, user.email, "crm",
                                   lambda doc: _edit_mapping(doc, request.form, choices))
            if not errors:
                flash("Where a missed call's records go is saved.")
                return redirect(url_for("setup.crm", account_id=account.id))
        doc = current_document(account, rt.box)
        cls = CRMS[account.crm_kind]
        html = render_template(
            "setup/crm.html", account=account, errors=errors,
            form=request.form if errors else None, state=connection_state(s, account.id),
            oauth_link=install_link(rt, account.id, account.crm_kind) if cls.oauth else None,
            crms=CRMS, kind=kind, fields=credential_fields(CRMS[kind].config_schema),
            stored=doc["crm"]["credentials"] if kind == account.crm_kind else {},
            api_base_url=doc["crm"].get("api_base_url") or "", mapping=doc["crm"]["mapping"],
            choices=choices, list_problem=list_problem, check=check)
        return (html, 400) if errors else html


def _test_crm(rt: Runtime, account: Account) -> tuple[Any, str | None]:
    try:
        return rt.crm_for(account).check_connection(), None
    except ConfigurationError as exc:
        return None, str(exc)
    except NotImplementedError:
        return None, f"{account.crm_kind} cannot be tested through its API."
    except ProviderError as exc:
        return None, _provider_problem(exc, account.crm_kind)


def _choice_ids(items: Any) -> set[str]:
    return {c.id for c in items or ()}


def _edit_mapping(doc: dict[str, Any], form: MultiDict[str, str], choices: CrmChoices | None
                  ) -> FieldErrors:
    """The mapping from the form; every id must be one the CRM listed (never a typed id)."""
    mapping = doc["crm"]["mapping"]
    errors: FieldErrors = {}
    mapping["creates"] = form.get("creates", "")
    offered: dict[str, set[str]] = {}
    if choices is not None:
        pipelines = {p.id: p for p in choices.pipelines or ()}
        offered = {"pipeline": set(pipelines), "owner_id": _choice_ids(choices.owners),
                   "task_queue_id": _choice_ids(choices.task_queues),
                   "lead_source": _choice_ids(choices.lead_sources),
                   "stage": {st.id for p in pipelines.values() for st in p.stages}
                   | _choice_ids(choices.pipeline_statuses)}
    for key in ("pipeline", "stage", "owner_id", "task_queue_id", "lead_source"):
        value = form.get(key) or None
        if value is not None and value != mapping.get(key) and value not in offered.get(key, ()):
            add_error(errors, f"crm.mapping.{key}", "choose one of the CRM's own entries")
        mapping[key] = value
    if choices is not None and choices.pipelines and mapping.get("pipeline") and \
            mapping.get("stage"):
        stages = {st.id for p in choices.pipelines if p.id == mapping["pipeline"]
                  for st in p.stages}
        if mapping["stage"] not in stages:
            add_error(errors, "crm.mapping.stage", "that stage is not in the chosen pipeline")
    mapping["task_priority"] = form.get("task_priority", "")
    due = form.get("task_due_minutes", "").strip()
    mapping["task_due_minutes"] = int(due) if due.isdigit() else due
    mapping["record_url"] = form.get("record_url", "").strip() or None
    return errors
