"""Benefits: catalog, rule language, 免申即享 matching (the redemption engine is `benefits.redemption`).

The public surface for other packages (see docs/architecture.md, "Benefits for the scan and
the list"): read a benefit's version in force, evaluate it for a person, check its window,
companions and caps, and compute the cap buckets the ledger counts in.
"""

# Each module names its public surface in its own __all__; this package's surface is their sum
# (the way asyncio's __init__ does it), so no name is listed twice.
from benefits.catalog import errors, evaluation, matching, periods, preview, rules, service, types
from benefits.catalog.errors import *  # noqa: F403
from benefits.catalog.evaluation import *  # noqa: F403
from benefits.catalog.matching import *  # noqa: F403
from benefits.catalog.periods import *  # noqa: F403
from benefits.catalog.preview import *  # noqa: F403
from benefits.catalog.rules import *  # noqa: F403
from benefits.catalog.service import *  # noqa: F403
from benefits.catalog.types import *  # noqa: F403

__all__ = (
    *errors.__all__,
    *evaluation.__all__,
    *matching.__all__,
    *periods.__all__,
    *preview.__all__,
    *rules.__all__,
    *service.__all__,
    *types.__all__,
)
