"""cogni_app."""
