"""The crime taxonomy: the codes every message is classified into (see shared contract)."""

from __future__ import annotations

from enum import StrEnum


class CrimeType(StrEnum):
    TERRORISM = "terrorism"
    ORGANISED_CRIME = "organised_crime"
    DRUG_TRAFFICKING = "drug_trafficking"
    FIREARMS_TRAFFICKING = "firearms_trafficking"
    MIGRANT_SMUGGLING = "migrant_smuggling"
    HUMAN_TRAFFICKING = "human_trafficking"
    CYBERCRIME = "cybercrime"
    CHILD_SEXUAL_EXPLOITATION = "child_sexual_exploitation"
    DOCUMENT_FRAUD = "document_fraud"
    WANTED_PERSON = "wanted_person"
    FINANCIAL_CRIME = "financial_crime"
    ENVIRONMENTAL_CRIME = "environmental_crime"
    PROPERTY_CRIME = "property_crime"
    VIOLENT_CRIME = "violent_crime"
    CIVIL_PROTECTION = "civil_protection"


CRIME_CODES: frozenset[str] = frozenset(c.value for c in CrimeType)
