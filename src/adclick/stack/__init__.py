"""The local stack: a private TimescaleDB cluster and a Tansu broker under a state directory.

``adclick up`` installs what is missing and starts both; nothing here is needed when
adclick runs against a real Kafka cluster and a real TimescaleDB.
"""

from adclick.stack.lifecycle import StackStatus, stack_down, stack_status, stack_up

__all__ = ["StackStatus", "stack_down", "stack_status", "stack_up"]
