"""Packaging beside pyproject.toml: the ``cli/`` folder installs as ``rldata_cli``.

A top-level module named ``cli`` clashes with any other package doing the same, so the
command-line package gets an rldata-owned name while its source stays in ``cli/``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["rldata", "rldata.*"]), "rldata_cli"],
    package_dir={"rldata_cli": "cli"},
)
