"""What went wrong when gymnasium could not make an env, said in one line with the fix.

gymnasium reports a malformed id, an unregistered one and a missing optional package
each in its own way (and a missing package sometimes as an unregistered namespace, as
for ``ALE/``), so this module maps them to one :class:`EnvNotFoundError` or
:class:`MissingDependencyError` that names the id and what to install.
"""

from __future__ import annotations

import difflib

from rldata.errors import EnvNotFoundError, MissingDependencyError, RldataError

# import name or namespace -> what to install
_EXTRAS = {
    "Box2D": "pip install 'gymnasium[box2d]'",
    "box2d": "pip install 'gymnasium[box2d]'",
    "ALE": "pip install ale-py",
    "ale_py": "pip install ale-py",
    "mujoco": "pip install 'rldata[mujoco]'",
    "imageio": "pip install imageio (MuJoCo's rendering needs it)",
    "pygame": "pip install 'gymnasium[classic-control]'",
}
_UNKNOWN = (
    "NameNotFound",
    "VersionNotFound",
    "NamespaceNotFound",
    "UnregisteredEnv",
    "DeprecatedEnv",
)


def env_error(env_id: object, err: BaseException) -> RldataError | None:
    """The one-line error for ``err`` raised while making ``env_id``; None if it is not ours."""
    text = str(err)
    if not isinstance(env_id, str) or env_id != env_id.strip() or "Malformed" in text:
        return EnvNotFoundError(
            f"env id {env_id!r} is malformed (expected [namespace/]Name-vN"
            + (", without surrounding spaces)" if isinstance(env_id, str) else ")")
        )
    missing = _missing_package(env_id, err)
    if missing is not None:
        return MissingDependencyError(f"env {env_id!r} needs an optional package: {missing}")
    if type(err).__name__ in _UNKNOWN:
        from gymnasium import registry

        close = difflib.get_close_matches(env_id, list(registry.keys()), n=3, cutoff=0.5)
        return EnvNotFoundError(
            f"unknown gymnasium env id {env_id!r}; closest registered ids: {close or 'none'}"
        )
    return None


def _missing_package(env_id: str, err: BaseException) -> str | None:
    namespace = env_id.split("/")[0] if "/" in env_id else None
    if type(err).__name__ == "NamespaceNotFound" and namespace in _EXTRAS:
        return _EXTRAS[namespace]
    name = getattr(err, "name", None) or getattr(err.__cause__, "name", None)
    if type(err).__name__ == "DependencyNotInstalled" or isinstance(err, ImportError):
        text = f"{err} {err.__cause__ or ''}"
        for module, fix in _EXTRAS.items():
            if module == name or module.lower() in text.lower():
                return fix
        return f"{name or text.strip()} (install what the env's docs list)"
    return None
