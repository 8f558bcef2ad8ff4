"""The electronic 优待证: SD-JWT VC credentials with a Token Status List, and their offline verifier."""

# Each module names its public surface in its own __all__; this package's surface is their sum.
from identity.credentials import errors, sdjwt, service, statuslist, types, verify
from identity.credentials.errors import *  # noqa: F403
from identity.credentials.sdjwt import *  # noqa: F403
from identity.credentials.service import *  # noqa: F403
from identity.credentials.statuslist import *  # noqa: F403
from identity.credentials.types import *  # noqa: F403
from identity.credentials.verify import *  # noqa: F403

__all__ = (
    *errors.__all__,
    *sdjwt.__all__,
    *service.__all__,
    *statuslist.__all__,
    *types.__all__,
    *verify.__all__,
)
