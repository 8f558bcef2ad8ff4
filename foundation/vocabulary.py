"""Codes shared by every package: person categories, districts, card and disability codes.

Sources: `reference/domain-policy.md` §(a) for categories, card kinds and statuses; GB/T 2260
for the 16 districts of Shanghai.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = (
    "CARD_KINDS",
    "CARD_STATUSES",
    "CATEGORIES",
    "DISABILITY_CAUSES",
    "SHANGHAI_DISTRICTS",
    "SHANGHAI_PROVINCE",
    "SURVIVOR_CATEGORIES",
    "VETERAN_SUBKINDS",
    "CardStatus",
    "district_code",
)

# code -> (中文, English)
CATEGORIES: Final[dict[str, tuple[str, str]]] = {
    "ACTIVE_SERVICE": ("现役军人", "active service member"),
    "VETERAN": ("退役军人", "veteran"),
    "TRANSFERRED_OFFICER": ("军队转业干部", "officer transferred to civilian work"),
    "DEMOBILIZED_SOLDIER": ("退役士兵", "discharged enlisted soldier"),
    "RETIRED_CADRE": ("军队离退休干部", "military retiree"),
    "DEMOBILIZED_PRE1954": ("复员军人", "demobilized serviceman (pre-1954)"),
    "ILL_RETURNEE": ("带病回乡退伍军人", "veteran sent home with illness"),
    "COMBAT_VETERAN": ("参战退役军人", "combat veteran"),
    "NUCLEAR_TEST_VETERAN": ("参试退役军人", "nuclear/missile test veteran"),
    "RURAL_OLD_CONSCRIPT": ("农村籍老义务兵", "elderly rural ex-conscript"),
    "DISABLED_SERVICEMAN": ("残疾军人", "disabled service member"),
    "MARTYR_FAMILY": ("烈士遗属", "family of a martyr"),
    "DUTY_DEATH_FAMILY": ("因公牺牲军人遗属", "family of a member who died on duty"),
    "ILLNESS_DEATH_FAMILY": ("病故军人遗属", "family of a member who died of illness"),
    "SERVICE_FAMILY": ("军属", "family of a serving member"),
    "MARTYR_ELDERLY_CHILD": ("烈士老年子女", "elderly child of a martyr"),
    "FIREFIGHTER": ("消防救援人员", "fire and rescue personnel"),
}

# The sub-kinds of VETERAN: holding one implies VETERAN for every rule.
VETERAN_SUBKINDS: Final = frozenset(
    {
        "TRANSFERRED_OFFICER",
        "DEMOBILIZED_SOLDIER",
        "RETIRED_CADRE",
        "DEMOBILIZED_PRE1954",
        "ILL_RETURNEE",
        "COMBAT_VETERAN",
        "NUCLEAR_TEST_VETERAN",
        "RURAL_OLD_CONSCRIPT",
    }
)

# 三属: families of martyrs, of members who died on duty, and of members who died of illness.
SURVIVOR_CATEGORIES: Final = frozenset({"MARTYR_FAMILY", "DUTY_DEATH_FAMILY", "ILLNESS_DEATH_FAMILY"})

# 因战 / 因公 / 因病
DISABILITY_CAUSES: Final[dict[str, tuple[str, str]]] = {
    "WAR": ("因战", "in combat"),
    "DUTY": ("因公", "on duty"),
    "ILLNESS": ("因病", "through illness"),
}

CARD_KINDS: Final[dict[str, tuple[str, str]]] = {
    "VETERAN_CARD": ("退役军人优待证", "veteran preferential card"),
    "SURVIVOR_CARD": ("烈士、因公牺牲军人、病故军人遗属优待证", "survivor preferential card"),
    "NONE": ("无", "none"),
}

CardStatus = Literal["ACTIVE", "SUSPENDED", "REVOKED", "REPLACED"]
CARD_STATUSES: Final[dict[str, tuple[str, str]]] = {
    "ACTIVE": ("有效", "active"),
    "SUSPENDED": ("暂停", "suspended"),
    "REVOKED": ("已收回", "revoked"),
    "REPLACED": ("已换发", "replaced"),
}

SHANGHAI_PROVINCE: Final = "310000"

# GB/T 2260 code -> (中文, English)
SHANGHAI_DISTRICTS: Final[dict[str, tuple[str, str]]] = {
    "310101": ("黄浦区", "Huangpu"),
    "310104": ("徐汇区", "Xuhui"),
    "310105": ("长宁区", "Changning"),
    "310106": ("静安区", "Jing'an"),
    "310107": ("普陀区", "Putuo"),
    "310109": ("虹口区", "Hongkou"),
    "310110": ("杨浦区", "Yangpu"),
    "310112": ("闵行区", "Minhang"),
    "310113": ("宝山区", "Baoshan"),
    "310114": ("嘉定区", "Jiading"),
    "310115": ("浦东新区", "Pudong"),
    "310116": ("金山区", "Jinshan"),
    "310117": ("松江区", "Songjiang"),
    "310118": ("青浦区", "Qingpu"),
    "310120": ("奉贤区", "Fengxian"),
    "310151": ("崇明区", "Chongming"),
}

_DISTRICT_BY_NAME = {
    name: code
    for code, (zh, en) in SHANGHAI_DISTRICTS.items()
    for name in (zh, zh.removesuffix("区").removesuffix("新"), en.lower())
}


def district_code(value: str) -> str | None:
    """The GB/T 2260 code for a district given as code, 中文 name (with or without 区) or English name."""
    value = value.strip()
    if value in SHANGHAI_DISTRICTS:
        return value
    return _DISTRICT_BY_NAME.get(value) or _DISTRICT_BY_NAME.get(value.lower())
