"""What an inventory rule reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One broken rule: where (host, or ``None`` for the cluster), which variable, what, the fix."""

    host: str | None
    variable: str
    message: str
    fix: str

    def __str__(self) -> str:
        where = f"{self.host}: " if self.host else ""
        return f"{where}{self.variable}: {self.message.rstrip('.')}. Fix: {self.fix}"
