"""The people registry: 优抚对象 from the bureau's roster, their PII sealed, masked and blind-indexed."""

from identity.people.errors import (
    CardSuspended,
    InvalidIdNumber,
    NotEnrolled,
    PersonNotFound,
    RosterRejected,
    SealBroken,
)
from identity.people.roster import (
    ROSTER_COLUMNS,
    decode_roster,
    import_roster,
    parse_roster,
    synthetic_roster,
    synthetic_roster_csv,
)
from identity.people.service import (
    REFUSED_CARD_STATUSES,
    add_relation,
    enrolled_person_id,
    get_person,
    get_profile,
    list_relations,
    pii_vault,
)
from identity.people.types import (
    CategoryView,
    ImportReport,
    LineError,
    Person,
    PersonProfile,
    Relation,
    RosterRow,
    SuishenLogin,
    SuishenSession,
)

__all__ = (
    "REFUSED_CARD_STATUSES",
    "ROSTER_COLUMNS",
    "CardSuspended",
    "CategoryView",
    "ImportReport",
    "InvalidIdNumber",
    "LineError",
    "NotEnrolled",
    "Person",
    "PersonNotFound",
    "PersonProfile",
    "Relation",
    "RosterRejected",
    "RosterRow",
    "SealBroken",
    "SuishenLogin",
    "SuishenSession",
    "add_relation",
    "decode_roster",
    "enrolled_person_id",
    "get_person",
    "get_profile",
    "import_roster",
    "list_relations",
    "parse_roster",
    "pii_vault",
    "synthetic_roster",
    "synthetic_roster_csv",
)
