"""The stable reason codes of a scan decision, with the message a venue's screen shows."""

from __future__ import annotations

from typing import Final

__all__ = ("MESSAGES", "REASONS")

# code -> (中文, English). Codes are a contract with scanner apps: add, never rename.
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "accepted": ("核验通过", "Accepted"),
    "invalid_code": ("无效的码，请让持码人刷新后重试", "Invalid code"),
    "expired": ("码已过期，请让持码人刷新", "Code expired"),
    "replayed": ("该码已使用，请让持码人刷新", "Code already used"),
    "not_enrolled": ("未在优抚对象名册中", "Not enrolled"),
    "not_eligible": ("不符合该项优待条件", "Not eligible for this benefit"),
    "quota_exhausted": ("本期优待次数已用完", "Quota for this period used up"),
    "venue_capacity_reached": ("今日本场馆优待名额已满", "Venue's daily capacity reached"),
    "outside_window": ("当前不在优待时段内", "Outside the benefit's time window"),
    "benefit_inactive": ("该优待项目未开放", "Benefit not active"),
    "wrong_venue": ("本场馆不提供该项优待", "Benefit not offered at this venue"),
    "card_suspended": ("优待证已暂停或收回", "Card suspended or revoked"),
    "too_many_companions": ("同行人数超过该项优待允许的人数", "More companions than the benefit allows"),
    "choose_benefit": ("持码人在本场馆有多项优待，请选择一项", "Several benefits apply here: choose one"),
    # offline decisions, answered on upload (POST /v1/scans/offline)
    "offline_budget_exceeded": ("超出离线核验额度，未计入", "Over the gate's offline budget: not counted"),
    "bad_decision_time": ("离线核验时间无效或已过上传时限", "Decision time in the future or too old to upload"),
    "venue_not_allowed": ("本设备不属于该场馆", "This device does not belong to that venue"),
    "local_id_reused": ("该离线记录编号已用于另一条记录", "This local_id was already uploaded with other content"),
    "offline_code_unsupported": ("离线时只能核验崇军码", "Only 崇军码 can be decided offline"),
}

REASONS: Final = frozenset(MESSAGES)
