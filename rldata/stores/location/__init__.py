"""The location room: which bytes live where (a path or a URL), where a command writes, the remote commit."""
