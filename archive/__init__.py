"""The tamper-evident audit archive (电子档案): reading the audit log in scope, an RFC 9162 Merkle
tree over it, signed checkpoints, inclusion and consistency proofs, verify and export.

The writer is `foundation.audit.write_audit` (every package records through it); this package
only reads, signs and checks. See docs/architecture.md.
"""

from archive import checkpoints, errors, merkle, service, types, verify
from archive.checkpoints import *  # noqa: F403
from archive.errors import *  # noqa: F403
from archive.merkle import *  # noqa: F403
from archive.service import *  # noqa: F403
from archive.types import *  # noqa: F403
from archive.verify import *  # noqa: F403

__all__ = (
    *checkpoints.__all__,
    *errors.__all__,
    *merkle.__all__,
    *service.__all__,
    *types.__all__,
    *verify.__all__,
)
