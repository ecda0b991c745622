from enum import StrEnum


class RolloutBlock(StrEnum):
    STATUS = "rollout_status"
