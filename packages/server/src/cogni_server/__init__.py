"""cogni_server."""
