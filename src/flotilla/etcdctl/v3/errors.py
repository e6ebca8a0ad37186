"""etcdctl 3.4's exit codes (ctlv3/command/error.go) and the one exception that carries them out."""

from __future__ import annotations

from typing import NoReturn

EXIT_SUCCESS = 0
EXIT_ERROR = 1
EXIT_BAD_CONNECTION = 2
EXIT_INVALID_INPUT = 3  # txn and watch input
EXIT_BAD_FEATURE = 4  # a valid flag with an unsupported value
EXIT_INTERRUPTED = 5
EXIT_IO = 6
EXIT_BAD_ARGS = 128


class CtlExit(Exception):
    """Stop etcdctl with ``code``; ``message`` (if any) is printed as ``Error: <message>`` on stderr."""

    def __init__(self, code: int, message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: int, message: str) -> NoReturn:
    """ExitWithError: print ``Error: message`` and exit with ``code``."""
    raise CtlExit(code, message)


def go_panic_nil() -> NoReturn:
    """Where etcdctl 3.4 dereferences a nil pointer, it panics: Go prints this and exits with 2."""
    import sys

    sys.stdout.flush()
    sys.stderr.write(
        "panic: runtime error: invalid memory address or nil pointer dereference\n"
        "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x0]\n"
    )
    raise CtlExit(EXIT_BAD_CONNECTION)
