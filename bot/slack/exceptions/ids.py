from enum import StrEnum


class ExceptionModal(StrEnum):
    CALLBACK = "exception_modal"
    REASON_BLOCK = "exception_reason"
    REASON_INPUT = "exception_reason_input"
    OWNER_BLOCK = "exception_owner"
    OWNER_INPUT = "exception_owner_input"
    EXPIRY_BLOCK = "exception_expiry"
    EXPIRY_INPUT = "exception_expiry_input"
