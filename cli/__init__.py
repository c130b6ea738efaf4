"""The ``rldata`` command line: thin click commands over :mod:`rldata.api`."""
