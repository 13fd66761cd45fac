"""Getting messages out: the outbox dispatcher, e-mail and webhook senders, and which failures are
worth retrying."""
from ._dispatcher import Dispatcher, Notifier, list_outbox
from ._failures import NETWORK_TIMEOUT, DeliveryError, RetryLater, slack_failure
from ._senders import ChannelSender, ChannelSettings
from ._webhooks import DELIVERY_HEADER, SubscriptionSender, unconfigured

__all__ = [
    "ChannelSender", "ChannelSettings", "DELIVERY_HEADER", "DeliveryError", "Dispatcher", "NETWORK_TIMEOUT",
    "Notifier", "RetryLater", "SubscriptionSender", "list_outbox", "slack_failure", "unconfigured",
]
