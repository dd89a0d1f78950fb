"""pbx-event-relay: publishes the config-event outbox to RabbitMQ, woken by LISTEN/NOTIFY and a poll."""
