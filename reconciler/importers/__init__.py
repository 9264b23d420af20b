"""Importers: other tools' files into podform documents (pure apart from reading those files)."""
