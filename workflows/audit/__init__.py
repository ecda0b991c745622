"""The hash-chained audit log (the ``events`` table) and its retention.

``_chain`` appends events (canonical JSON bodies, each hashed with the one before);
``_verify`` walks the chain; ``_checkpoints`` reads and signs the checkpoints that
``audit prune`` leaves; ``_retention`` prunes and ``_archive`` writes and verifies the
archive files a prune produces.

Retention (``audit prune``) removes a prefix of the chain and leaves a row in
``audit_checkpoints`` signed with HMAC-SHA256: :func:`verify_database` checks every
checkpoint (:func:`check_checkpoints`) and walks the events from the newest one. Reports
ask :func:`latest_checkpoint` / :func:`period_pruned`.
"""

from workflows.audit._archive import ArchiveResult, verify_archive
from workflows.audit._chain import (
    BODY_KEYS,
    GENESIS_HASH,
    HEAD_ID,
    add_audited,
    append,
    canonical_json,
    chain_hash,
    format_time,
    lock,
)
from workflows.audit._checkpoints import (
    GENESIS,
    Checkpoint,
    check_checkpoints,
    checkpoint_payload,
    checkpoint_rows,
    checkpoints,
    key_id,
    latest_checkpoint,
    period_pruned,
    sign_checkpoint,
)
from workflows.audit._retention import PruneResult, check_min_age, prune
from workflows.audit._verify import VerifyResult, check_row, verify, verify_database

__all__ = [
    "BODY_KEYS",
    "GENESIS",
    "GENESIS_HASH",
    "HEAD_ID",
    "ArchiveResult",
    "Checkpoint",
    "PruneResult",
    "VerifyResult",
    "add_audited",
    "append",
    "canonical_json",
    "chain_hash",
    "check_checkpoints",
    "check_min_age",
    "check_row",
    "checkpoint_payload",
    "checkpoint_rows",
    "checkpoints",
    "format_time",
    "key_id",
    "latest_checkpoint",
    "lock",
    "period_pruned",
    "prune",
    "sign_checkpoint",
    "verify",
    "verify_archive",
    "verify_database",
]
