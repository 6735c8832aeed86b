"""The setup pages under ``/accounts/<id>/setup``: an admin answers the eight setup
questions in the browser.

Every page saves through the account schema and import that ``textback accounts import`` uses
(:mod:`connector.web.setup.saving`), shows each refused field's message next to the field, stores
nothing on bad input, carries the session's CSRF token, and records who changed what. Provider
lists (numbers, pipelines, owners) are read live from the carrier and the CRM.
"""

from __future__ import annotations

from connector.web.setup import connect, new_account, trial, views
from connector.web.setup.blueprint import accounts_bp, bp

__all__ = ["accounts_bp", "bp", "connect", "new_account", "trial", "views"]
