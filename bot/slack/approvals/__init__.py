"""Ring-readiness approvals: the Approve / Reject buttons and the rejection modal."""
