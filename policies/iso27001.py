"""ISO/IEC 27001:2022 Annex A controls for which the ledger provides evidence.

Titles and descriptions are our summaries, not the standard's text.
"""

from __future__ import annotations

from .framework import Control, Framework

__all__ = ["FRAMEWORK"]

FRAMEWORK = Framework(
    id="iso27001",
    title="ISO/IEC 27001 information security controls",
    version="ISO/IEC 27001:2022 Annex A",
    controls=(
        Control(
            id="A.5.3",
            title="Conflicting duties kept apart",
            description=(
                "Duties that conflict are given to different people, so no one "
                "checks their own work."
            ),
            checks=("segregation-of-duties",),
        ),
        Control(
            id="A.5.28",
            title="Evidence that holds up",
            description=(
                "Evidence about events is collected and kept so that it can be "
                "relied on later."
            ),
            checks=("chain-integrity", "clock-skew"),
        ),
        Control(
            id="A.5.33",
            title="Records protected",
            description=(
                "Records are protected from loss, tampering and unauthorised "
                "release for as long as they must be kept."
            ),
            checks=("chain-integrity", "retention-coverage"),
        ),
        Control(
            id="A.5.34",
            title="Privacy of personal data",
            description=("Personal data is protected as laws and contracts require."),
            checks=("retention-coverage", "erasure-fulfilment"),
            other_evidence=(
                "the legal basis and privacy notices are documents outside the ledger."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="A.8.5",
            title="Secure sign-in",
            description=(
                "Sign-in is protected by methods suited to the access it grants."
            ),
            checks=("actor-identification",),
            other_evidence=(
                "the sign-in methods are evidenced by the identity system; the "
                "ledger shows only that actions are attributed to individuals."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="A.8.10",
            title="Deleting data no longer needed",
            description="Data is deleted when it is no longer required.",
            checks=("erasure-fulfilment", "retention-coverage"),
        ),
        Control(
            id="A.8.15",
            title="Event logs produced and protected",
            description=(
                "Logs of activities, exceptions and faults are produced, kept, "
                "protected and analysed."
            ),
            checks=("chain-integrity", "actor-identification", "clock-skew"),
        ),
        Control(
            id="A.8.16",
            title="Watching for unusual behaviour",
            description=(
                "Systems are monitored for anomalous behaviour and action is "
                "taken on it."
            ),
            checks=("confidence-drift", "override-rate", "log-review"),
            other_evidence=("network and host monitoring are outside the ledger."),
            ledger_evidences_part=True,
        ),
        Control(
            id="A.8.17",
            title="Clocks in agreement",
            description=(
                "The clocks of the systems involved agree with an approved time source."
            ),
            checks=("clock-skew",),
        ),
        Control(
            id="A.8.24",
            title="Cryptography used correctly",
            description=(
                "Cryptography and its keys are used and managed by defined rules."
            ),
            checks=("chain-integrity",),
            other_evidence=(
                "the key management procedure (custody, rotation, backup of the "
                "log key) is a document."
            ),
            ledger_evidences_part=True,
        ),
    ),
)
