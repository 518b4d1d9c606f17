"""HTTP API of the app: chat, account reads, operator routes."""
