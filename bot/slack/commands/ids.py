from enum import StrEnum


class CommandId(StrEnum):
    SLASH = "/patch"
