"""The people registry: 优抚对象 from the bureau's roster, their PII sealed, masked and blind-indexed."""

# Each module names its public surface in its own __all__; this package's surface is their sum
# (the way asyncio's __init__ does it), so no name is listed twice.
from identity.people import errors, roster, service, types
from identity.people.errors import *  # noqa: F403
from identity.people.roster import *  # noqa: F403
from identity.people.service import *  # noqa: F403
from identity.people.types import *  # noqa: F403

__all__ = (
    *errors.__all__,
    *roster.__all__,
    *service.__all__,
    *types.__all__,
)
