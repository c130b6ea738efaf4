"""Store backends: the store interface, the registry, opening, one private module per payload.

The room is `backend` (singular): `rldata.stores.backends()` is the public function
that lists the registered names.
"""
