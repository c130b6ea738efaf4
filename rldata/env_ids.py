"""Env ids that come with data: used only when gymnasium already knows them.

``gymnasium.make("mod:Name-v0")`` imports ``mod`` before it looks the id up (that is how
gymnasium lets a package register its envs), so an env id can name code:
``"this:Pendulum-v1"`` prints the Zen of Python, and ``"datasets.evil.hook:Pendulum-v1"``
runs a ``hook.py`` shipped inside a store when training starts from the store's parent
folder (``gymnasium.make_vec`` too; ``gymnasium.spec`` only looks the id up).

The rule: an id the user gives (``--env``, ``--eval-env``, ``env=`` in Python) is theirs
to trust, module part included. An id read from data (a store's manifest, a run's
``config.json`` / ``summary.json``, Minari metadata, policy metadata) passes
:func:`trusted_env_id` before anything makes an env or looks up a spec from it: it is
used only if it is already in gymnasium's registry, checked by dictionary membership,
which imports nothing. An id with a module part is refused even when the rest is
registered (gymnasium would import the module first). A registered id's entry point was
put there by code the user imported, so making it is fine.

Examples:
    >>> trusted_env_id("Pendulum-v1", source="runs/a/config.json")
    'Pendulum-v1'
    >>> trusted_env_id("this:Pendulum-v1", source="S/rldata.json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    rldata.errors.UntrustedEnvIdError: env id 'this:Pendulum-v1' read from S/rldata.json names a module to import; ...
"""

from __future__ import annotations

import shlex

from rldata.errors import UntrustedEnvIdError

MODULE_PART = "names a module to import"
NOT_REGISTERED = "is not registered with gymnasium in this process"


def env_id_problem(env_id: object) -> str | None:
    """Why an env id read from data may not be used to make an env; None when it may.

    Only gymnasium's registry is consulted (a dictionary lookup): nothing is imported on
    behalf of the id.
    """
    if not isinstance(env_id, str) or not env_id:
        return "is not an env id (expected a registered id such as 'Pendulum-v1')"
    if ":" in env_id:
        return MODULE_PART
    from gymnasium.envs.registration import registry  # the library itself, not the id's code

    if env_id not in registry:
        return NOT_REGISTERED
    return None


def trusted_env_id(
    env_id: object, *, source: str, option: str = "--env", keyword: str = "env"
) -> str:
    """``env_id``, read from ``source``, if an env may be made from it without importing code.

    Args:
        env_id: the id as read from the file.
        source: where it was read (a path, "the manifest of S"), named in the error.
        option / keyword: how the user passes the id explicitly (CLI option, Python keyword).

    Raises:
        UntrustedEnvIdError: the id names a module (``mod:Name``), is not registered, or is
            not a string; one line naming the id, ``source`` and how to pass it explicitly.
    """
    problem = env_id_problem(env_id)
    if problem is None:
        return str(env_id)
    shown = shlex.quote(env_id) if isinstance(env_id, str) and env_id.isprintable() else "ENV_ID"
    why = (
        "rldata never imports code named by data"
        if problem == MODULE_PART
        else "rldata imports nothing to find it (import the package that registers it)"
    )
    raise UntrustedEnvIdError(
        f"env id {env_id!r} read from {source} {problem}; {why}: "
        f"pass {option} {shown} (or {keyword}= in Python) if you trust it"
    )
