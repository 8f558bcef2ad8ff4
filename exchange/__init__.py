"""数据汇聚 (issue 13): the relay that delivers the outbox to the data center, its sinks and seal,
the dead letters, replay, pruning, and the data-quality monitor.

The outbox itself (table and writer) is `foundation.outbox`: every package writes its events
there, in the transaction of its change. This package sits above the domain (it reads their
tables for the quality checks) and below `api`.
"""

from exchange.relay import *  # noqa: F403
from exchange.relay import __all__ as _relay
from exchange.seal import *  # noqa: F403
from exchange.seal import __all__ as _seal
from exchange.service import *  # noqa: F403
from exchange.service import __all__ as _service
from exchange.sinks import *  # noqa: F403
from exchange.sinks import __all__ as _sinks
from exchange.types import *  # noqa: F403
from exchange.types import __all__ as _types

__all__ = (*_relay, *_seal, *_service, *_sinks, *_types)
