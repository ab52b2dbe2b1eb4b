"""PALM's processes: one package per service, each over the `palm` library."""
