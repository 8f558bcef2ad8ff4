"""The 长三角 trust list: identity issuers beyond 随申码, each with its own provider, signed for verifiers."""

# Each module names its public surface in its own __all__; this package's surface is their sum.
from identity.issuers import errors, service, types
from identity.issuers.errors import *  # noqa: F403
from identity.issuers.service import *  # noqa: F403
from identity.issuers.types import *  # noqa: F403

__all__ = (*errors.__all__, *service.__all__, *types.__all__)
