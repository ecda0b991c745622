from enum import StrEnum


class HomeEvent(StrEnum):
    OPENED = "app_home_opened"
