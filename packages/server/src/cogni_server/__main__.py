"""``python -m cogni_server serve|migrate``."""

from cogni_server.cli import main

main()
