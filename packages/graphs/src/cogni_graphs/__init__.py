"""cogni_graphs."""
