"""Service functions: the catalog's logic below the HTTP layer, each taking the session it works in."""
