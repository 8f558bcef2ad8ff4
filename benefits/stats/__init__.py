"""Operating statistics (第二十三条) computed from the ledger, the roster and 好差评."""

from benefits.stats import service, types
from benefits.stats.service import *  # noqa: F403
from benefits.stats.types import *  # noqa: F403

__all__ = (*service.__all__, *types.__all__)
