"""The services as child processes on loopback: a private Redis, the oracle, the attacker API and its workers
(harness.Stack), their command lines and settings (commands), and the Redis alone (redis.RedisServer)."""

from bbrange.shared.stack import commands
from bbrange.shared.stack.harness import Service, Stack
from bbrange.shared.stack.redis import NoRedisServer, RedisServer, redis_server_command, redis_server_executable

__all__ = ["NoRedisServer", "RedisServer", "Service", "Stack", "commands", "redis_server_command",
           "redis_server_executable"]
