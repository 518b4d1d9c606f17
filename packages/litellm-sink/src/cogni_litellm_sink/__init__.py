"""cogni_litellm_sink."""
