"""HTTP routes, one module per resource. Routes parse and authorise; services and storage do the work."""
