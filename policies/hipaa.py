"""HIPAA controls (45 CFR Part 164) for which the ledger provides evidence.

Titles and descriptions are our summaries, not the rule's text. Sections
under 164.308, 164.312 and 164.316 are from the Security Rule, 164.502 and
164.528 from the Privacy Rule.
"""

from __future__ import annotations

from .framework import Control, Framework

__all__ = ["FRAMEWORK"]

FRAMEWORK = Framework(
    id="hipaa",
    title="HIPAA Security and Privacy Rules",
    version="45 CFR Part 164 (Subparts C and E)",
    controls=(
        Control(
            id="164.308(a)(1)(ii)(D)",
            title="Regular review of activity records",
            description=(
                "Records of what happened in the system (audit logs, access "
                "reports) are looked at on a regular schedule."
            ),
            checks=("log-review", "chain-integrity"),
            other_evidence=(
                "the review procedure, its schedule and who carries it out are "
                "documented outside the ledger."
            ),
        ),
        Control(
            id="164.308(a)(5)(ii)(C)",
            title="Watching sign-in attempts",
            description=(
                "Attempts to sign in are monitored and irregularities are reported."
            ),
            checks=("actor-identification",),
            other_evidence=(
                "sign-in events are kept by the identity provider and the "
                "service's access logs; the ledger shows only that every action "
                "is attributed to a named actor."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="164.312(a)(2)(i)",
            title="A distinct identifier for every user",
            description=(
                "Each person and system that acts is known by its own "
                "identifier, so its actions can be traced to it."
            ),
            checks=("actor-identification",),
        ),
        Control(
            id="164.312(b)",
            title="Recording and examining activity",
            description=(
                "Mechanisms record the activity of systems that hold health "
                "data, and the records can be examined."
            ),
            checks=("chain-integrity", "actor-identification", "clock-skew"),
        ),
        Control(
            id="164.312(c)(1)",
            title="Protecting health data from improper change",
            description=(
                "Health data is guarded against being altered or destroyed "
                "without authority."
            ),
            checks=("chain-integrity",),
        ),
        Control(
            id="164.312(c)(2)",
            title="Means to confirm data was not altered",
            description=(
                "A mechanism shows that records have not been changed or "
                "destroyed without authority."
            ),
            checks=("chain-integrity",),
        ),
        Control(
            id="164.312(d)",
            title="Confirming who is acting",
            description=(
                "A person or system is confirmed to be who it claims before it "
                "gets access."
            ),
            checks=("actor-identification",),
            other_evidence=(
                "authentication (tokens, passwords, second factors) happens "
                "before a record reaches the ledger; its strength needs evidence "
                "from the identity system."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="164.316(b)(2)(i)",
            title="Keeping required documentation six years",
            description=(
                "Policies, procedures and records of required actions are kept "
                "for six years from creation or last effect."
            ),
            checks=("retention-coverage", "chain-integrity"),
        ),
        Control(
            id="164.502(b)",
            title="Using no more health data than needed",
            description=(
                "Uses and disclosures of health data are limited to what the "
                "purpose needs."
            ),
            checks=("retention-coverage",),
            other_evidence=(
                "whether each use is limited to what is needed is set by "
                "policies and role definitions outside the ledger."
            ),
            ledger_evidences_part=True,
        ),
        Control(
            id="164.528",
            title="Listing disclosures to an individual on request",
            description=(
                "A person can obtain a list of the disclosures made of their "
                "health data."
            ),
            checks=("actor-identification", "retention-coverage"),
            other_evidence=(
                "the ledger can list, per pseudonymous subject, who acted on "
                "the subject's records and when; disclosures made outside the "
                "ledger need their own register."
            ),
            ledger_evidences_part=True,
        ),
    ),
)
