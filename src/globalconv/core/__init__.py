"""What every layer may use: error types, atomic run files, small shared helpers. Imports nothing
else of globalconv (``pyproject.toml``'s import contracts check it)."""
