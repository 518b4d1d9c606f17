"""`python -m cogni_app` == `cogni-app`."""

from cogni_app.cli import app

app()
