"""People for tests: a person as the rules see it, and the small roster the scan tests import."""

from __future__ import annotations

import uuid
from datetime import date

from identity import Person
from identity.people import ROSTER_COLUMNS

__all__ = ("DISABLED_ID", "ROSTER", "STRANGER_ID", "SUSPENDED_ID", "VETERAN_ID", "person")

_DEFAULTS = {
    "name_masked": "张*",
    "disability_grade": None,
    "disability_cause": None,
    "card_kind": "VETERAN_CARD",
    "card_status": "ACTIVE",
    "card_province": "310000",
    "district": "310104",
    "birth_date": date(1970, 5, 1),
}


def person(*categories: str, **fields) -> Person:
    """An `identity.Person` with `categories`: a Xuhui veteran-card holder born 1970-05-01 unless
    `fields` say otherwise (and a fresh id unless `id` is given)."""
    return Person(id=fields.pop("id", None) or uuid.uuid4(), categories=frozenset(categories), **(_DEFAULTS | fields))


# Citizens of the scan tests' roster (fictitious, valid GB 11643 numbers).
VETERAN_ID = "310101199001011234"
DISABLED_ID = "11010519491231002X"
SUSPENDED_ID = "310104198503077772"
STRANGER_ID = "310104198001011239"  # a valid number that is not in the roster

ROSTER = "\n".join(
    (
        ",".join(ROSTER_COLUMNS),
        f"{VETERAN_ID},张三丰,VETERAN,,,VETERAN_CARD,ACTIVE,310000,浦东新区,1990-01-01",
        f"{DISABLED_ID},欧阳娜娜,VETERAN|DISABLED_SERVICEMAN,2,因战,VETERAN_CARD,ACTIVE,310000,310104,1949-12-31",
    )
)
