"""The adapters: the ports of `watchcentre.core.ports` implemented on real I/O (AMQP, HTTP, databases).

Each adapter imports only `watchcentre.core` and its own library, never another adapter.
"""
