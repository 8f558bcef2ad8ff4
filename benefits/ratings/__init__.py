"""好差评: the holder's own redemption history and ratings, and the admins' queue of 差评 cases."""

# Each module names its public surface in its own __all__; this package's surface is their sum
# (the way asyncio's __init__ does it), so no name is listed twice.
from benefits.ratings import errors, service, types
from benefits.ratings.errors import *  # noqa: F403
from benefits.ratings.service import *  # noqa: F403
from benefits.ratings.types import *  # noqa: F403

__all__ = (
    *errors.__all__,
    *service.__all__,
    *types.__all__,
)
