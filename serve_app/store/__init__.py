"""Persistence: the metadata database and its migrations, blob storage, the result cache, the
task store."""
