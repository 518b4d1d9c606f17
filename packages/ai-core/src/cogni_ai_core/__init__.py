"""cogni_ai_core."""
