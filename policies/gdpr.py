"""GDPR controls (Regulation (EU) 2016/679) for which the ledger provides evidence.

Titles and descriptions are our summaries, not the Regulation's text.
"""

from __future__ import annotations

from .framework import Control, Framework

__all__ = ["FRAMEWORK"]

FRAMEWORK = Framework(
    id="gdpr",
    title="General Data Protection Regulation",
    version="Regulation (EU) 2016/679",
    controls=(
        Control(
            id="Art. 5(1)(d)",
            title="Keeping data accurate",
            description=(
                "Personal data is correct and kept current; wrong data is fixed "
                "or removed promptly."
            ),
            checks=(
                "annotation-provenance",
                "inter-annotator-agreement",
                "override-rate",
            ),
        ),
        Control(
            id="Art. 5(1)(e)",
            title="Keeping identifying data no longer than needed",
            description=(
                "Data that identifies people is kept only as long as its "
                "purpose requires."
            ),
            checks=("retention-coverage", "erasure-fulfilment"),
        ),
        Control(
            id="Art. 5(1)(f)",
            title="Integrity and confidentiality",
            description=(
                "Processing protects personal data against unauthorised change, "
                "loss and access."
            ),
            checks=("chain-integrity", "actor-identification"),
            other_evidence=(
                "confidentiality measures (encryption at rest, access control) "
                "need evidence from the infrastructure."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="Art. 5(2)",
            title="Being able to show compliance",
            description=(
                "The controller can demonstrate that processing follows the principles."
            ),
            checks=("chain-integrity", "log-review", "actor-identification"),
        ),
        Control(
            id="Art. 15(1)(h)",
            title="Telling people about automated decisions",
            description=(
                "A data subject who asks learns whether automated decisions are "
                "made about them, the logic involved and what it means for them."
            ),
            checks=("explanation-coverage", "decision-traceability"),
            other_evidence=(
                "what was actually told to the data subject needs evidence from "
                "the request-handling process."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="Art. 17",
            title="Erasure on request",
            description=(
                "Personal data is erased without undue delay when the data "
                "subject has the right to have it erased."
            ),
            checks=("erasure-fulfilment",),
        ),
        Control(
            id="Art. 22(3)",
            title="Human intervention in automated decisions",
            description=(
                "A person affected by an automated decision can obtain human "
                "intervention and contest the decision."
            ),
            checks=("human-oversight", "review-timeliness", "segregation-of-duties"),
        ),
        Control(
            id="Art. 25",
            title="Data protection built in and by default",
            description=(
                "Systems are designed so that only needed personal data is "
                "processed and kept."
            ),
            checks=("retention-coverage", "erasure-fulfilment"),
            other_evidence=(
                "design decisions and default settings are documented outside "
                "the ledger; the ledger shows personal values held apart as "
                "erasable commitments and their retention."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="Art. 30(1)",
            title="Records of processing activities",
            description=(
                "The controller keeps a written record of its processing activities."
            ),
            checks=(
                "decision-traceability",
                "annotation-provenance",
                "actor-identification",
            ),
            other_evidence=(
                "the record of processing (purposes, categories of data and "
                "recipients) is a document; the ledger records the operations "
                "themselves."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="Art. 32(1)(b)",
            title="Ongoing integrity and resilience of processing",
            description=(
                "Systems keep data intact, available and confidential over time."
            ),
            checks=("chain-integrity", "clock-skew"),
            other_evidence=(
                "availability and resilience need evidence from operations "
                "(backups, failover tests)."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="Art. 35",
            title="Assessing impact before high-risk processing",
            description=(
                "Processing likely to put people at high risk is assessed for "
                "its impact beforehand."
            ),
            checks=("human-oversight", "confidence-drift", "override-rate"),
            other_evidence=(
                "the impact assessment is a document; the ledger supplies "
                "oversight and monitoring figures for it."
            ),
            ledger_evidences_part=True,
        ),
    ),
)
