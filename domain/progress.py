"""Progress output for long commands: tqdm when installed, plain lines otherwise."""

from __future__ import annotations

from typing import Any, Self, TextIO

__all__ = ["PlainProgress", "progress_bar"]


class PlainProgress:
    """Write one progress line per table: tqdm's stand-in when the `dev` extra is absent."""

    def __init__(self, *, total: int, desc: str, disable: bool, file: TextIO, **_: Any) -> None:
        self.total, self.desc, self.disable, self.file = total, desc, disable, file
        self.done = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.set_postfix_str("done")

    def set_postfix_str(self, label: str) -> None:
        if not self.disable:
            self.file.write(f"{self.desc}: {self.done}/{self.total} rows, {label}\n")
            self.file.flush()

    def update(self, count: int) -> None:
        self.done += count


try:
    from tqdm import tqdm as progress_bar  # type: ignore[import-untyped]
except ImportError:  # a lean install: tqdm comes with the `dev` extra only
    progress_bar = PlainProgress
