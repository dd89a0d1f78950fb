"""Realistic, deterministic demo data: people, companies and phone numbers from a seeded random.Random.

Only names and numbers come from here; secrets (SIP, PINs, CTI passwords) never do: they are always drawn
from the `secrets` module, whatever the seed.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

FIRSTNAMES = (
    "Alice", "Amandine", "Antoine", "Arthur", "Baptiste", "Camille", "Charlotte", "Chloé", "Clément", "David",
    "Élodie", "Emma", "Étienne", "Fatima", "François", "Gabriel", "Hélène", "Hugo", "Inès", "Isabelle",
    "Jules", "Julie", "Karim", "Laura", "Léa", "Louis", "Lucas", "Manon", "Marc", "Marie", "Mathilde",
    "Maxime", "Mehdi", "Nathalie", "Nicolas", "Noah", "Océane", "Olivier", "Paul", "Pauline", "Pierre",
    "Quentin", "Raphaël", "Rose", "Samuel", "Sarah", "Sophie", "Thomas", "Valentin", "Yasmine", "Zoé",
)  # fmt: skip
LASTNAMES = (
    "Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau",
    "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier",
    "Morel", "Girard", "André", "Mercier", "Dupont", "Lambert", "Bonnet", "François", "Martinez", "Legrand",
    "Garnier", "Faure", "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Nicolas", "Perrin",
    "Mathieu", "Clément", "Gauthier", "Dumont", "Lopez", "Fontaine", "Chevalier", "Robin", "Masson", "Nguyen",
)  # fmt: skip
COMPANY_STEMS = (
    "Atlas", "Boréal", "Cobalt", "Delta", "Éole", "Fusion", "Granit", "Horizon", "Iris", "Jade", "Kepler",
    "Lumen", "Mistral", "Nova", "Orion", "Polaris", "Quartz", "Rivage", "Sirius", "Titan", "Ulysse", "Vega",
)  # fmt: skip
COMPANY_TRADES = (
    "Conseil", "Logistique", "Bâtiment", "Informatique", "Transports", "Assurances", "Immobilier", "Santé",
    "Énergie", "Distribution", "Industries", "Communication", "Finance", "Médical", "Services",
)  # fmt: skip
COMPANY_FORMS = ("SARL", "SAS", "SA", "& Associés", "Group")
# (calling code, format of the national significant number, weight): mostly French contacts, some abroad.
FOREIGN = (
    ("44", "20 #### ####", 3),
    ("49", "30 #######", 3),
    ("32", "2 ### ## ##", 2),
    ("41", "22 ### ## ##", 2),
    ("1", "(212) ###-####", 2),
    ("34", "91 ### ## ##", 1),
    ("39", "06 #### ####", 1),
)  # fmt: skip


@dataclass(frozen=True)
class Person:
    firstname: str
    lastname: str

    @property
    def login(self) -> str:
        """An ASCII login such as jeanne.roche (validation.cti_login accepts it)."""
        return ascii_slug(f"{self.firstname}.{self.lastname}")


def ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "".join(ch if ch.isalnum() or ch in ".-" else "-" for ch in plain).strip(".-")


def person(rng: random.Random) -> Person:
    return Person(rng.choice(FIRSTNAMES), rng.choice(LASTNAMES))


def company(rng: random.Random) -> str:
    return f"{rng.choice(COMPANY_STEMS)} {rng.choice(COMPANY_TRADES)} {rng.choice(COMPANY_FORMS)}"


def _digits(rng: random.Random, template: str) -> str:
    return "".join(str(rng.randrange(10)) if ch == "#" else ch for ch in template)


def french_number(rng: random.Random, kind: str, *, national: bool) -> str:
    """A French number as people write it: '01 42 68 53 00' at home, '+33 1 42 68 53 00' from abroad."""
    first = rng.choice("67") if kind == "mobile" else rng.choice("12345" if kind != "other" else "89")
    pairs = " ".join(f"{rng.randrange(100):02d}" for _ in range(4))
    return f"0{first} {pairs}" if national else f"+33 {first} {pairs}"


def foreign_number(rng: random.Random) -> str:
    code, template, _ = rng.choices(FOREIGN, weights=[w for *_, w in FOREIGN])[0]
    return f"+{code} {_digits(rng, template)}"


def company_domain(name: str) -> str:
    return ascii_slug(name.split(" ")[0]) + ".example"
