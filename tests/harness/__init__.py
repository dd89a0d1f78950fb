"""Test harness: real PostgreSQL and RabbitMQ servers on free loopback ports, and the local dev stack."""

from harness.ports import free_port
from harness.postgres import PostgresServer
from harness.procs import ServerError
from harness.rabbitmq import RabbitMQServer

__all__ = ["PostgresServer", "RabbitMQServer", "ServerError", "free_port"]
