"""The lead as a HubSpot deal in the account's pipeline and stage.

Decision: the pipeline and stage ids come from the account mapping (``crm.mapping.pipeline`` and
``crm.mapping.stage``) and are required. Stage ids differ per portal (only the default pipeline's
are predictable), so guessing ``default`` / ``appointmentscheduled`` would file leads in a stage
the business never chose; a missing one raises :class:`~connector.kernel.errors.ConfigurationError`
naming the setting, before any API call.

An existing open deal is never moved: once a rep works it, its stage is theirs.
https://developers.hubspot.com/docs/api/crm/deals
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hubspot.crm.deals as deals_sdk

from connector.kernel.errors import ConfigurationError, PermanentProviderError
from crm_adapters.base import LeadSpec
from crm_adapters.hubspot.client import HubSpotApi
from crm_adapters.hubspot.mappings import DEFAULT_CLOSED_STAGES, associations
from crm_adapters.hubspot.models import sdk_model

DEAL_READ_PROPERTIES = ("dealstage", "pipeline", "hs_is_closed")


def require_mapping(lead: LeadSpec) -> tuple[str, str]:
    """The lead's pipeline and stage ids, or ConfigurationError naming the missing setting."""
    if not lead.pipeline:
        raise ConfigurationError(
            "HubSpot needs the deal pipeline id for new leads", field="crm.mapping.pipeline"
        )
    if not lead.stage:
        raise ConfigurationError(
            "HubSpot needs the deal stage id for new leads", field="crm.mapping.stage"
        )
    return lead.pipeline, lead.stage


def is_open(api: HubSpotApi, deal_id: str) -> bool:
    """True when the deal exists, is not archived and is not in a closed stage.

    ``hs_is_closed`` is HubSpot's calculated "stage is closed won/lost" flag.
    """
    try:
        with api.translating("deal read", ambiguous=False):
            deal = api.deals.get_by_id(
                deal_id=deal_id,
                properties=list(DEAL_READ_PROPERTIES),
                _request_timeout=api.timeout,
            )
    except PermanentProviderError as exc:
        if exc.status == 404:  # deleted or merged away: make a new one
            return False
        raise
    return is_open_deal(deal.properties or {})


def is_open_deal(props: Mapping[str, Any]) -> bool:
    """Whether a deal with these properties (:data:`DEAL_READ_PROPERTIES`) is still open."""
    closed = props.get("hs_is_closed")
    if closed is not None and closed != "":
        return str(closed).lower() != "true"
    return props.get("dealstage") not in DEFAULT_CLOSED_STAGES


def set_pipeline_stage(api: HubSpotApi, lead: LeadSpec, existing_id: str | None) -> str:
    """See :meth:`crm_adapters.base.CrmAdapter.set_pipeline_stage`.

    One ``GET`` when ``existing_id`` is given; one ``POST /crm/v3/objects/deals`` (associated to
    the contact with type 3) when a deal is made.
    """
    pipeline, stage = require_mapping(lead)
    if existing_id and is_open(api, existing_id):
        return existing_id
    props = {"dealname": lead.name, "pipeline": pipeline, "dealstage": stage}
    if lead.owner_id:
        props["hubspot_owner_id"] = lead.owner_id
    body = sdk_model(
        deals_sdk.SimplePublicObjectInputForCreate,
        properties=props,
        associations=associations(deals_sdk, "deals", {"contacts": lead.contact_id}),
    )
    with api.translating("deal create", ambiguous=True):
        created = api.deals.create(
            simple_public_object_input_for_create=body, _request_timeout=api.timeout
        )
    return str(created.id)
