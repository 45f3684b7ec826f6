"""One module per platform; `SINKS` maps a YAML `type` to its class (filled in by `registry.py`)."""
