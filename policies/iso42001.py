"""ISO/IEC 42001:2023 Annex A controls for which the ledger provides evidence.

Titles and descriptions are our summaries, not the standard's text.
"""

from __future__ import annotations

from .framework import Control, Framework

__all__ = ["FRAMEWORK"]

FRAMEWORK = Framework(
    id="iso42001",
    title="ISO/IEC 42001 AI management system controls",
    version="ISO/IEC 42001:2023 Annex A",
    controls=(
        Control(
            id="A.6.2.4",
            title="Verifying and validating the AI system",
            description=(
                "The AI system is verified and validated against defined criteria."
            ),
            checks=("inter-annotator-agreement", "override-rate"),
            other_evidence=(
                "the validation plan and its acceptance criteria are documents."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="A.6.2.6",
            title="Operating and monitoring the AI system",
            description=(
                "The AI system is operated and monitored, and problems are acted on."
            ),
            checks=("confidence-drift", "override-rate", "human-oversight"),
        ),
        Control(
            id="A.6.2.8",
            title="Event logs of the AI system",
            description=(
                "The phases of the AI system's life in which event logs are "
                "kept are set, and logs are kept in them."
            ),
            checks=("chain-integrity", "decision-traceability", "clock-skew"),
        ),
        Control(
            id="A.7.4",
            title="Quality of data for AI",
            description=(
                "Requirements for data quality are set and the data used meets them."
            ),
            checks=("inter-annotator-agreement", "annotation-provenance"),
        ),
        Control(
            id="A.7.5",
            title="Where the data came from",
            description=(
                "The provenance of data used by the AI system is recorded over "
                "its life."
            ),
            checks=("annotation-provenance",),
        ),
    ),
)
