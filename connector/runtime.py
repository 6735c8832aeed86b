"""The per-process runtime: settings, database, credential box, queue and adapter cache.

Built once by ``textback serve``, ``textback worker`` and the CLI, and handed to the web app and
the jobs. Adapters are built from an account's stored (decrypted) credentials and cached until the
account changes.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from huey.api import Huey
from huey.consumer import Consumer

from carrier_adapters import CARRIERS
from carrier_adapters.base import CarrierAdapter
from connector.jobs.batched_enqueues import batched
from connector.jobs.enqueuer import Enqueuer
from connector.jobs.queue import build_huey, make_consumer
from connector.jobs.sweeper import Jobs
from connector.kernel.metrics import InstrumentedCrm
from connector.kernel.ratelimit import RateLimiter, portal_key
from connector.settings.config import Settings
from connector.storage.account_cache import AccountCache
from connector.storage.crypto import CredentialBox
from connector.storage.db import Database
from connector.storage.group_commit import GroupCommit
from connector.storage.installations import DbTokenStore, installation_external_id
from connector.storage.models import Account
from connector.storage.ratelimits import DbRateLimiter, RedisRateLimiter
from connector.storage.sandbox_store import DbCrmStore, DbOutbox
from crm_adapters import CRMS
from crm_adapters.base import CrmAdapter

#: How long the webhook path may use an account it read before reading it again.
ACCOUNT_CACHE_SECONDS = 2.0


class Runtime:
    """Everything a request handler or job needs, built from :class:`Settings`."""

    def __init__(
        self, settings: Settings, *, immediate_queue: bool = False, queue_name: str = "textback"
    ) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        #: Where the webhook views commit what they store: many requests, one transaction.
        self.writer = GroupCommit(self.db)
        self.box = CredentialBox(settings.secret_key)
        self.huey: Huey = build_huey(settings, immediate=immediate_queue, name=queue_name)
        self.crm_huey: Huey = build_huey(settings, immediate=immediate_queue, name=queue_name,
                                         lane="crm")
        self._adapters: dict[tuple[str, str, Any], Any] = {}
        self._accounts = AccountCache(self._read_account, max_age=ACCOUNT_CACHE_SECONDS)
        #: Where the webhook views put their jobs on the queue, after answering.
        self.enqueuer = Enqueuer(inline=immediate_queue,
                                 batch=lambda: batched(self.huey, self.crm_huey))
        self._lock = threading.Lock()
        #: The CRM budgets every worker shares: in Redis with the Redis queue, else the database.
        self.rate_limiter: RateLimiter = (
            RedisRateLimiter(settings.queue_url) if settings.queue_is_redis
            else DbRateLimiter(self.db))
        self.jobs = Jobs(self)

    def __repr__(self) -> str:
        return f"Runtime({self.settings!r})"

    def consumers(self, text_workers: int, crm_workers: int, *, embedded: bool = True
                  ) -> list[Consumer]:
        """Thread-pool consumers for both lanes (the texts lane's size is its own)."""
        return [make_consumer(self.huey, text_workers, embedded=embedded),
                make_consumer(self.crm_huey, crm_workers, embedded=embedded)]

    def account(self, account_id: str) -> Account | None:
        """An account read through a short cache (the webhook hot path reads one per request).

        The row comes back detached and is only read; an import is seen within
        :data:`ACCOUNT_CACHE_SECONDS` (and the moment one read takes).
        """
        return self._accounts.get(account_id)

    def _read_account(self, account_id: str) -> Account | None:
        with self.db.session() as s:
            account = s.get(Account, account_id)
            if account is not None:
                s.expunge(account)
        return account

    def webhook_url(self, carrier: str, account_id: str, kind: str) -> str:
        """Our public URL for a carrier webhook of ``kind`` for the account."""
        return f"{self.settings.public_url}/webhooks/{carrier}/{account_id}/{kind}"

    def carrier_for(self, account: Account) -> CarrierAdapter:
        """The account's carrier adapter, built once per account version."""
        return self._adapter("carrier", account)  # type: ignore[no-any-return]

    def sms_carrier_for(self, account: Account) -> CarrierAdapter:
        """The adapter that sends the account's texts: ``carrier.sms`` when set, else the
        carrier itself."""
        if account.settings["carrier"].get("sms"):
            return self._adapter("sms", account)  # type: ignore[no-any-return]
        return self.carrier_for(account)

    def adapter_for_webhook(self, account: Account, carrier: str) -> CarrierAdapter | None:
        """The adapter a ``/webhooks/<carrier>/<account>/...`` request belongs to, if any."""
        if carrier == account.carrier_kind:
            return self.carrier_for(account)
        sms = account.settings["carrier"].get("sms")
        if sms and sms["kind"] == carrier:
            return self.sms_carrier_for(account)
        return None

    def crm_for(self, account: Account) -> CrmAdapter:
        """The account's CRM adapter, built once per account version; its calls are timed."""
        return InstrumentedCrm(self._adapter("crm", account))  # type: ignore[return-value]

    def _adapter(self, role: str, account: Account) -> Any:
        key = (role, account.id, account.updated_at)
        with self._lock:
            adapter = self._adapters.get(key)
        if adapter is not None:
            return adapter
        section = (account.settings["carrier"]["sms"] if role == "sms"
                   else account.settings[role])
        sealed = {"carrier": account.carrier_credentials, "crm": account.crm_credentials,
                  "sms": account.sms_credentials or ""}[role]
        adapter = self.adapter_from(role, account.id, account.timezone, section,
                                    self.box.open(sealed))
        with self._lock:
            for stale in [k for k in self._adapters if k[0] == role and k[1] == account.id]:
                del self._adapters[stale]
            self._adapters[key] = adapter
        return adapter

    def adapter_from(self, role: str, account_id: str, timezone: str, section: dict[str, Any],
                     credentials: dict[str, Any]) -> Any:
        """A new, uncached adapter for an account's ``carrier``, ``sms`` or ``crm`` section and
        these credentials: how every adapter is built, and how the setup pages try credentials
        before anything is stored."""
        kind = section["kind"]
        cls: Any = CRMS[kind] if role == "crm" else CARRIERS[kind]
        kwargs: dict[str, Any] = {"api_base_url": section.get("api_base_url")}
        if kind == "sandbox":  # the built-in sandbox records into this database
            if role != "crm":
                kwargs["outbox"] = DbOutbox(self.db, account_id)
            else:
                kwargs["store"] = DbCrmStore(self.db, account_id)
        if role == "crm":
            kwargs.update(cls.options_from_mapping(section.get("mapping") or {}))
            if cls.accepts_token_store:
                kwargs["token_store"] = DbTokenStore(self.db, self.box, account_id, kind)
            accepts = inspect.signature(cls.__init__).parameters
            if "timezone" in accepts:
                kwargs["timezone"] = timezone
            if "rate_limiter" in accepts:  # one budget per CRM portal, shared by every worker
                kwargs.update(rate_limiter=self.rate_limiter,
                              rate_limit_key=self.crm_portal(kind, account_id, credentials))
            credentials = self.with_app_credentials(kind, credentials)
        return cls(credentials, **kwargs)

    def crm_portal(self, crm: str, account_id: str, credentials: dict[str, Any]) -> str:
        """What an account's CRM requests count against, as the CRM limits them: the portal an
        app is installed in (its id in the CRM: two accounts in one HubSpot portal share its
        100 requests per 10 s), else the private token's app (hashed), else the account."""
        external_id = installation_external_id(self.db, account_id, crm)
        if external_id:
            return f"{crm}:{external_id}"
        token = credentials.get("access_token") or credentials.get("api_key")
        if token:
            return f"{crm}:token:{portal_key(str(token))}"
        return f"{crm}:account:{account_id}"

    def with_app_credentials(self, crm: str, credentials: dict[str, Any]) -> dict[str, Any]:
        """An account's CRM credentials with the deployment's marketplace app secret added: a
        HubSpot account installed through this deployment's app names only its ``client_id``,
        and the secret stays in ``TEXTBACK_HUBSPOT_CLIENT_SECRET`` (rotated in one place)."""
        settings = self.settings
        if (crm == "hubspot" and settings.hubspot_app and not credentials.get("access_token")
                and not credentials.get("client_secret")
                and credentials.get("client_id") == settings.hubspot_client_id):
            return {**credentials, "client_secret": settings.hubspot_client_secret}
        return credentials

    def close(self) -> None:
        """Finish the enqueues and writes under way and release database connections."""
        self.enqueuer.close()
        self.writer.close()
        self.db.dispose()
