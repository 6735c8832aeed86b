"""The SDK's request models, built with one configuration per SDK package.

Each model the HubSpot SDK generates takes a ``local_vars_configuration``; left out, the model
builds a new ``Configuration``, whose constructor sets the level of the SDK's logger and of
urllib3's. Setting any logger's level empties the level cache of every logger in the process, so
one missed call's CRM write (about thirty models: filters, associations, inputs) cost about
thirty rounds of that, and every log call in every thread then recomputed its level. The configuration is only
read by the models (``client_side_validation``), so one per package serves every thread.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, TypeVar

Model = TypeVar("Model")


def sdk_model(model: Callable[..., Model], **fields: Any) -> Model:
    """``model(**fields)`` with its SDK package's shared configuration."""
    return model(**fields, local_vars_configuration=_configuration(model.__module__))


@functools.cache
def _configuration(model_module: str) -> Any:
    # "hubspot.crm.objects.calls.models.filter" -> "hubspot.crm.objects.calls.configuration"
    package = model_module.rsplit(".models", 1)[0]
    return importlib.import_module(f"{package}.configuration").Configuration()
