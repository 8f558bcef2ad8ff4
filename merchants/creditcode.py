"""统一社会信用代码 (unified social credit code, GB 32100-2015): format and check character."""

from __future__ import annotations

__all__ = ("credit_code_check_char", "is_valid_credit_code", "make_credit_code")

# GB 32100-2015 §4.2: 31 characters, without I, O, Z, S, V (too easily misread).
_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUE = {c: i for i, c in enumerate(_CHARSET)}
# Weight of position i (1-based) is 3^(i-1) mod 31.
_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


def credit_code_check_char(first17: str) -> str:
    """The 18th character for the first 17 (which must come from the code's charset)."""
    total = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHARSET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True for an 18-character code whose layout and check character are right."""
    if len(code) != 18 or any(c not in _VALUE for c in code):
        return False
    if not code[2:8].isdigit():  # positions 3-8: the GB/T 2260 code of the registering authority
        return False
    return credit_code_check_char(code[:17]) == code[17]


def make_credit_code(district: str, serial: int) -> str:
    """A well-formed code of an enterprise (91) registered in `district`: for demo data and tests.

    The 9th-17th characters (the organisation code) are `MA` and `serial` in seven digits, so
    distinct serials give distinct codes.
    """
    first17 = f"91{district}MA{serial:07d}"
    return first17 + credit_code_check_char(first17)
