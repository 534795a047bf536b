"""Which models and versions exist (the repository on disk) and which are live (the registry)."""
