"""Shared helpers for the project's tests: free ports, throwaway databases, child processes, ASGI fakes.

Tests never assume an empty server: every database is created with a unique name and dropped
afterwards, every process listens on a port picked at random on loopback.
"""

from testsupport.asgi import serve_asgi
from testsupport.databases import ADMIN_URL, database_url, fresh_database
from testsupport.ports import free_port
from testsupport.processes import ManagedProcess, wait_for_http

__all__ = ["ADMIN_URL", "ManagedProcess", "database_url", "free_port", "fresh_database", "serve_asgi", "wait_for_http"]
