"""Where a store lives: local paths and URLs, destinations, the remote commit protocol."""
