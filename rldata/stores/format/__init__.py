"""The store format core: manifest, schema, checksums, commit, lock, episodes, stats, file names."""
