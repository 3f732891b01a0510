"""EU AI Act articles (Regulation (EU) 2024/1689) with evidence in the ledger.

Titles and descriptions are our summaries, not the Regulation's text.
"""

from __future__ import annotations

from .framework import Control, Framework

__all__ = ["FRAMEWORK"]

FRAMEWORK = Framework(
    id="eu-ai-act",
    title="EU Artificial Intelligence Act",
    version="Regulation (EU) 2024/1689",
    controls=(
        Control(
            id="Art. 10(2)(c)",
            title="Data preparation, including labelling, is governed",
            description=(
                "Operations that prepare training data, such as annotation and "
                "labelling, follow managed practices."
            ),
            checks=("annotation-provenance", "inter-annotator-agreement"),
        ),
        Control(
            id="Art. 12(1)",
            title="Events recorded automatically over the system's life",
            description=(
                "A high-risk AI system records events in logs automatically "
                "for as long as it is used."
            ),
            checks=("chain-integrity", "decision-traceability"),
        ),
        Control(
            id="Art. 12(2)",
            title="Logs that serve risk and post-market monitoring",
            description=(
                "The logs let one find situations that may create risk, "
                "support monitoring after release and the operation's oversight."
            ),
            checks=("decision-traceability", "clock-skew", "confidence-drift"),
        ),
        Control(
            id="Art. 14(4)(d)",
            title="Overseers can set an output aside",
            description=(
                "The people overseeing the system can decide not to use an "
                "output, or override or reverse it."
            ),
            checks=("human-oversight", "override-rate"),
        ),
        Control(
            id="Art. 19(1)",
            title="Providers keep the logs at least six months",
            description=(
                "Providers keep the logs under their control for a period fit "
                "for the purpose, at least six months."
            ),
            checks=("retention-coverage", "chain-integrity"),
        ),
        Control(
            id="Art. 26(6)",
            title="Deployers keep the logs at least six months",
            description=(
                "Deployers keep the logs under their control for at least six months."
            ),
            checks=("retention-coverage", "chain-integrity"),
        ),
        Control(
            id="Art. 72",
            title="Post-market monitoring",
            description=(
                "Providers gather and analyse data on performance after release "
                "under a monitoring plan."
            ),
            checks=("confidence-drift", "override-rate", "log-review"),
            other_evidence="the post-market monitoring plan is a document.",
            ledger_evidences_part=True,
        ),
        Control(
            id="Art. 86",
            title="Explanation of individual decisions",
            description=(
                "A person affected by a decision based on a high-risk system's "
                "output can obtain a clear explanation of the system's role."
            ),
            checks=("explanation-coverage", "decision-traceability"),
        ),
    ),
)
