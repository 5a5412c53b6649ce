"""HTTP views, one module per resource. Views parse, call a service, respond."""
