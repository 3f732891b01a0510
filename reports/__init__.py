"""Audit packs: render, sign, verify, and export OSCAL assessment results."""

from .oscal import assessment_results, assessment_results_json
from .pack import (
    DEFAULT_MAX_EMBEDDED,
    IssuedPack,
    PreparedPack,
    evaluate,
    issue_pack,
    parse_period_bound,
    prepare_pack,
)
from .signing import (
    SigningIdentity,
    ensure_signing_identity,
    load_signing_identity,
    select_identity,
    sign_pdf,
)
from .verify_pack import CheckOutcome, PackVerification, verify_pack

__all__ = [
    "DEFAULT_MAX_EMBEDDED",
    "CheckOutcome",
    "IssuedPack",
    "PackVerification",
    "PreparedPack",
    "SigningIdentity",
    "assessment_results",
    "assessment_results_json",
    "ensure_signing_identity",
    "evaluate",
    "issue_pack",
    "load_signing_identity",
    "parse_period_bound",
    "prepare_pack",
    "select_identity",
    "sign_pdf",
    "verify_pack",
]
