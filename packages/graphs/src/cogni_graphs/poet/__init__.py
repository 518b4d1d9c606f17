"""`poet`: a poem about the present moment, after asking the clock."""
