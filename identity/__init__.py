"""Identity: city identity providers, 崇军码 keys and codes, sessions, people registry, roster import."""

# Each module names its public surface in its own __all__; this package's surface is their sum
# (the way asyncio's __init__ does it), so no name is listed twice.
from identity import accounts, admins, codes, duties, errors, keys, city, people, pii, scan, secrets, sessions, signing, sm2jws, suishen, tokens, types
from identity.accounts import *  # noqa: F403
from identity.admins import *  # noqa: F403
from identity.codes import *  # noqa: F403
from identity.duties import *  # noqa: F403
from identity.errors import *  # noqa: F403
from identity.keys import *  # noqa: F403
from identity.city import *  # noqa: F403
from identity.people import *  # noqa: F403
from identity.pii import *  # noqa: F403
from identity.scan import *  # noqa: F403
from identity.secrets import *  # noqa: F403
from identity.sessions import *  # noqa: F403
from identity.signing import *  # noqa: F403
from identity.sm2jws import *  # noqa: F403
from identity.suishen import *  # noqa: F403
from identity.tokens import *  # noqa: F403
from identity.types import *  # noqa: F403

__all__ = (
    *accounts.__all__,
    *admins.__all__,
    *codes.__all__,
    *duties.__all__,
    *errors.__all__,
    *keys.__all__,
    *city.__all__,
    *people.__all__,
    *pii.__all__,
    *scan.__all__,
    *secrets.__all__,
    *sessions.__all__,
    *signing.__all__,
    *sm2jws.__all__,
    *suishen.__all__,
    *tokens.__all__,
    *types.__all__,
)
