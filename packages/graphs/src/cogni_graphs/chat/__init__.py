"""`chat`: plain conversation."""
