"""Tool failures that are the caller's fault (bad arguments): answered as results, not raised."""


class ToolArgumentError(ValueError):
    """The model passed arguments the tool cannot use; the result says why so the model can retry."""
