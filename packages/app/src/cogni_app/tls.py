"""The app's side of mTLS to the Agent Server (docs/compliance.md, `# mTLS`): one SSL context that checks
the server's certificate against a CA and presents the app's own certificate."""

from __future__ import annotations

import ssl
from pathlib import Path


def client_ssl_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """None when nothing is configured (plain HTTP or the system's trust store); a bad file fails here."""
    if cert is None and key is None and ca is None:
        return None
    if (cert is None) != (key is None):
        raise ValueError("COGNI_SERVER_TLS_CERT and COGNI_SERVER_TLS_KEY go together: set both or neither")
    context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    if cert is not None and key is not None:
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    return context
