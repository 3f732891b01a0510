"""NIST AI RMF 1.0 subcategories for which the ledger provides evidence.

Titles and descriptions are our summaries, not the framework's text.
"""

from __future__ import annotations

from .framework import Control, Framework

__all__ = ["FRAMEWORK"]

FRAMEWORK = Framework(
    id="nist-ai-rmf",
    title="NIST AI Risk Management Framework",
    version="AI RMF 1.0 (NIST AI 100-1, 2023)",
    controls=(
        Control(
            id="GOVERN 1.5",
            title="Planned monitoring and periodic review",
            description=(
                "The AI system is monitored on an ongoing basis and reviewed "
                "periodically, with roles and frequency set."
            ),
            checks=("log-review", "confidence-drift"),
            other_evidence=(
                "the monitoring plan and review frequency are organisational documents."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="GOVERN 3.2",
            title="Roles for human oversight defined",
            description=(
                "Who oversees the AI system, and how people and the system "
                "divide the work, is defined."
            ),
            checks=("human-oversight", "segregation-of-duties"),
            other_evidence="the role definitions themselves are documents.",
            ledger_evidences_part=True,
        ),
        Control(
            id="MAP 2.3",
            title="Data quality and scientific soundness considered",
            description=(
                "The quality of the data and the soundness of testing are "
                "considered and documented."
            ),
            checks=("annotation-provenance", "inter-annotator-agreement"),
        ),
        Control(
            id="MEASURE 1.3",
            title="Assessment by people independent of the work",
            description=(
                "Reviews and assessments involve people who did not build or "
                "run the part they assess."
            ),
            checks=("segregation-of-duties",),
        ),
        Control(
            id="MEASURE 2.4",
            title="Behaviour in production monitored",
            description=(
                "How the deployed system behaves and performs is watched while it runs."
            ),
            checks=("confidence-drift", "override-rate"),
        ),
        Control(
            id="MEASURE 2.8",
            title="Transparency and accountability",
            description=(
                "Risks to transparency and accountability are examined and recorded."
            ),
            checks=(
                "actor-identification",
                "chain-integrity",
                "decision-traceability",
            ),
        ),
        Control(
            id="MEASURE 2.9",
            title="Outputs explained and documented",
            description=(
                "The model is explained and its outputs interpreted in context "
                "and documented."
            ),
            checks=("explanation-coverage", "decision-traceability"),
        ),
        Control(
            id="MEASURE 2.11",
            title="Fairness and bias evaluated",
            description=(
                "Fairness and harmful bias are evaluated and the results recorded."
            ),
            checks=("inter-annotator-agreement", "override-rate"),
            other_evidence=(
                "the ledger holds no group attributes, so fairness across "
                "groups needs a separate bias evaluation."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="MEASURE 3.3",
            title="Feedback and appeal from affected people",
            description=(
                "People affected by the system can report problems and appeal "
                "outcomes, and this feeds evaluation."
            ),
            checks=("human-oversight", "review-timeliness"),
            other_evidence=(
                "the channels through which people report and appeal are "
                "outside the ledger."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="MANAGE 4.1",
            title="Monitoring after deployment, with appeal and override",
            description=(
                "After deployment the system is monitored, and people can "
                "appeal and override its outputs."
            ),
            checks=("human-oversight", "override-rate", "confidence-drift"),
        ),
        Control(
            id="MANAGE 4.3",
            title="Incidents and errors tracked and communicated",
            description=(
                "Incidents and errors are recorded, followed up and reported to "
                "those concerned."
            ),
            checks=("log-review", "chain-integrity"),
            other_evidence=(
                "incident reports and their communication are kept in the "
                "incident process, not the ledger."
            ),
            ledger_evidences_part=True,
        ),
    ),
)
