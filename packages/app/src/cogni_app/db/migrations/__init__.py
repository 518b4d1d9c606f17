"""Packaged SQL migrations (`NNNN_name.sql`); a package so `cogni_app.db.migrate` can read them as resources."""
