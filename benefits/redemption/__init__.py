"""Redemption: the scan decision, the append-only ledger, reversals, and what staff see of the
ledger (`reports`: their redemptions, the daily report, the sealed monthly statement; `seal`)."""

# Each module names its public surface in its own __all__; this package's surface is their sum
# (the way asyncio's __init__ does it), so no name is listed twice. The modules are bound as
# `_seal` and so on because `seal` is also the name of a function here.
from benefits.redemption import archive as _archive, offline as _offline, partitions as _partitions, reasons as _reasons, seal as _seal, service as _service, types as _types
from benefits.redemption.archive import *  # noqa: F403
from benefits.redemption.offline import *  # noqa: F403
from benefits.redemption.partitions import *  # noqa: F403
from benefits.redemption.reasons import *  # noqa: F403
from benefits.redemption.seal import *  # noqa: F403
from benefits.redemption.service import *  # noqa: F403
from benefits.redemption.types import *  # noqa: F403

__all__ = (
    *_archive.__all__,
    *_offline.__all__,
    *_partitions.__all__,
    *_reasons.__all__,
    *_seal.__all__,
    *_service.__all__,
    *_types.__all__,
)
