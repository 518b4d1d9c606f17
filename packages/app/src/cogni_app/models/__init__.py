"""The model allowlist, read from LiteLLM's /model/info."""

from cogni_app.models.allowlist import ModelAllowlist, ModelAllowlistUnavailable, ModelInfo, UnknownModel

__all__ = ["ModelAllowlist", "ModelAllowlistUnavailable", "ModelInfo", "UnknownModel"]
