"""The setup pages' blueprint, under ``/accounts/<account_id>/setup``."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("setup", __name__, url_prefix="/accounts/<account_id>/setup")

#: Pages about accounts themselves (creating one), outside any one account's setup.
accounts_bp = Blueprint("setup_accounts", __name__, url_prefix="/accounts")
