"""Slack adapters: the Web API client, the outbox deliverer and the Directory port."""

from integrations.slack.client import make_client
from integrations.slack.deliverer import SlackDeliverer
from integrations.slack.directory import DirectoryUnavailable, SlackDirectory

__all__ = ["DirectoryUnavailable", "SlackDeliverer", "SlackDirectory", "make_client"]
