"""RabbitMQ through aio-pika, one module per job: the connection (connect), the names and topology
(topology), moving queues of another type over to quorum (migrate), the confirmed publisher (publisher), the intake consumer (consumer), dead letters and
the `watchcentre dead` command (dead_letters), the console's dead-letter port (dead_letter_port),
the live event feed (feed) and queue depths for /metrics (depths)."""

from watchcentre.adapters.amqp.connect import RECONNECT_INTERVAL_S, ChannelWatch, connect, user_of
from watchcentre.adapters.amqp.consumer import AmqpConsumer, Handler
from watchcentre.adapters.amqp.dead_letter_port import AmqpDeadLetters
from watchcentre.adapters.amqp.dead_letters import (
    REPLAYED_HEADER,
    DeadLetter,
    announce,
    dead_letter_id,
    dead_letter_info,
    drop_dead_before,
    list_dead,
    replay_dead,
)
from watchcentre.adapters.amqp.depths import queue_depths
from watchcentre.adapters.amqp.feed import EventFeed, EventListener
from watchcentre.adapters.amqp.migrate import Migrated, MigrationRefused, migrate_queues
from watchcentre.adapters.amqp.publisher import (
    ERROR_HEADER,
    EVENTS_BATCH,
    NO_ROUTE,
    PERSISTENT,
    PUBLISH_TIMEOUT_S,
    AmqpPublisher,
)
from watchcentre.adapters.amqp.topology import (
    DELIVERY_LIMIT,
    QUORUM,
    DeliveryQueue,
    Names,
    QueueTypeMismatch,
    declare_exchanges,
    declare_inbound,
    declare_topology,
    delivery_queues,
    inbound_arguments,
)

__all__ = [
    "DELIVERY_LIMIT",
    "ERROR_HEADER",
    "EVENTS_BATCH",
    "NO_ROUTE",
    "PERSISTENT",
    "PUBLISH_TIMEOUT_S",
    "QUORUM",
    "RECONNECT_INTERVAL_S",
    "REPLAYED_HEADER",
    "AmqpConsumer",
    "AmqpDeadLetters",
    "AmqpPublisher",
    "ChannelWatch",
    "DeadLetter",
    "DeliveryQueue",
    "EventFeed",
    "EventListener",
    "Handler",
    "Migrated",
    "MigrationRefused",
    "Names",
    "QueueTypeMismatch",
    "announce",
    "connect",
    "dead_letter_id",
    "dead_letter_info",
    "declare_exchanges",
    "declare_inbound",
    "declare_topology",
    "delivery_queues",
    "drop_dead_before",
    "inbound_arguments",
    "list_dead",
    "migrate_queues",
    "queue_depths",
    "replay_dead",
    "user_of",
]
