"""The keyed, hash-chained audit log (the ``events`` table), its retention and witnesses.

``_keys`` holds the HMAC audit keys (current and retired); ``_chain`` appends events
(canonical JSON bodies, each MAC'd with the one before); ``_signing`` is Ed25519 for what
leaves the database (bundles, witnessed heads); ``_witness`` signs heads into a file and
checks the database against it;
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
    read_head,
    session_keys,
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
from workflows.audit._keys import (
    KEY_REQUIRED,
    AuditKeys,
    KeyRequired,
    event_mac,
    hash_matches,
    head_mac,
)
from workflows.audit._retention import PruneResult, check_min_age, prune
from workflows.audit._signing import (
    ALGORITHM,
    PublicKey,
    Signer,
    generate_keypair,
    load_public_key,
    load_signer,
)
from workflows.audit._verify import VerifyResult, check_row, verify, verify_database
from workflows.audit._witness import (
    ROLLOUT_END_KINDS,
    WITNESS_FORMAT,
    Witnessed,
    check_witnessed,
    read_witness,
    sign_head,
    wanted_seqs,
    witness_if_due,
)

__all__ = [
    "ALGORITHM",
    "BODY_KEYS",
    "GENESIS",
    "GENESIS_HASH",
    "HEAD_ID",
    "KEY_REQUIRED",
    "ROLLOUT_END_KINDS",
    "WITNESS_FORMAT",
    "ArchiveResult",
    "AuditKeys",
    "Checkpoint",
    "KeyRequired",
    "PruneResult",
    "PublicKey",
    "Signer",
    "VerifyResult",
    "Witnessed",
    "add_audited",
    "append",
    "canonical_json",
    "chain_hash",
    "check_checkpoints",
    "check_min_age",
    "check_row",
    "check_witnessed",
    "checkpoint_payload",
    "checkpoint_rows",
    "checkpoints",
    "event_mac",
    "format_time",
    "generate_keypair",
    "hash_matches",
    "head_mac",
    "key_id",
    "latest_checkpoint",
    "load_public_key",
    "load_signer",
    "lock",
    "period_pruned",
    "prune",
    "read_head",
    "read_witness",
    "session_keys",
    "sign_checkpoint",
    "sign_head",
    "verify",
    "verify_archive",
    "verify_database",
    "wanted_seqs",
    "witness_if_due",
]
