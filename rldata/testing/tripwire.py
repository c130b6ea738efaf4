"""An audit-hook tripwire: what was unpickled, executed, spawned or imported while armed.

``sys.addaudithook`` hooks cannot be removed, so one hook is installed on first import and
stays; it records only while armed. The ``import`` event fires when a module is loaded
(not when it is found in ``sys.modules``), so arm it after warming the code paths a test
exercises, and an import while armed is a finding.

Examples:
    >>> with Tripwire.armed_for() as events:
    ...     import pickle; _ = pickle.loads(pickle.dumps(range(2)))
    >>> any(event == "pickle.find_class" for event, _ in events)
    True
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

WATCHED = ("pickle.find_class", "exec", "os.system", "subprocess.Popen", "os.posix_spawn", "import")


class Tripwire:
    """Records audited events while armed."""

    events: list[tuple[str, str]] = []
    armed = False

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if cls.armed and event in WATCHED:
            cls.events.append((event, repr(args)[:120]))

    @classmethod
    @contextlib.contextmanager
    def armed_for(cls) -> Iterator[list[tuple[str, str]]]:
        """Arm for the ``with`` block; yields the list the events land in."""
        cls.events = []
        cls.armed = True
        try:
            yield cls.events
        finally:
            cls.armed = False

    @classmethod
    def imports(cls, module: str) -> list[str]:
        """The recorded imports of ``module`` (or of one of its submodules)."""
        return [
            args
            for event, args in cls.events
            if event == "import" and (args.startswith(f"('{module}'") or f"'{module}." in args)
        ]


sys.addaudithook(Tripwire.hook)
