"""Prometheus metrics of the HTTP API (names prefixed `cogni_app_api_`)."""

from prometheus_client import Counter

CHAT_REQUESTS = Counter("cogni_app_api_chat_requests_total", "POST /v1/chat by outcome", ["outcome"])
