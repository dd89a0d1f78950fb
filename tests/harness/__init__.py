"""Test harness: real PostgreSQL, RabbitMQ and Asterisk servers on free loopback ports, SIP phones, and the
local dev stack."""

from harness.asterisk import AsteriskServer
from harness.ports import free_port
from harness.postgres import PostgresServer
from harness.procs import ServerError
from harness.rabbitmq import RabbitMQServer

__all__ = ["AsteriskServer", "PostgresServer", "RabbitMQServer", "ServerError", "free_port"]
