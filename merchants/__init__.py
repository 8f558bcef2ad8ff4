"""Merchants: partners, venues, scanner devices and staff, and who may reach which (`scope`).

The public surface is the union of the modules' own `__all__` (the way asyncio's package
names its surface), so each name is listed once, where it is defined. Other packages import
from here, never from a module inside.
"""

from merchants import errors, scope, service, staff, types
from merchants.creditcode import is_valid_credit_code
from merchants.devicegate import check_device
from merchants.errors import *  # noqa: F403
from merchants.keys import SEAL_SECRET, SealKey, SealRing, device_hmac_key, require_keys, rotate_seal_key, seal_key, seal_ring
from merchants.scope import *  # noqa: F403
from merchants.service import *  # noqa: F403
from merchants.staff import *  # noqa: F403
from merchants.types import *  # noqa: F403

__all__ = (
    "SEAL_SECRET",
    "SealKey",
    "SealRing",
    "check_device",
    "device_hmac_key",
    "is_valid_credit_code",
    "require_keys",
    "rotate_seal_key",
    "seal_key",
    "seal_ring",
    *errors.__all__,
    *scope.__all__,
    *service.__all__,
    *staff.__all__,
    *types.__all__,
)
