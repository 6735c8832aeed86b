"""The setup pages' blueprint, under ``/accounts/<account_id>/setup``."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("setup", __name__, url_prefix="/accounts/<account_id>/setup")
