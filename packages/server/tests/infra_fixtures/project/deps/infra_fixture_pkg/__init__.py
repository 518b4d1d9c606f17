"""A dependency package that is only importable because langgraph.json lists ./deps."""
