"""The exit codes of ``storagectl``: one named constant per outcome, stable for scripts and CI.

=====  ==================  =====================================================================
Code   Name                Meaning
=====  ==================  =====================================================================
0      OK                  The command did what was asked (every check passed, the run succeeded).
1      CHECKS_FAILED       ``verify`` ran and at least one check failed.
2      ANSIBLE_FAILED      ``deploy``: ansible-playbook failed (a task failed or a host was
                           unreachable), timed out or could not start.
3      INVALID_INVENTORY   The inventory is missing, cannot be parsed or lacks what is needed.
4      LAB_ERROR           ``lab up|status|down`` could not do its job.
64     USAGE               Bad command line (argparse errors, no inventory given or found).
70     INTERNAL_ERROR      A bug in storagectl (set STORAGECTL_DEBUG=1 for the traceback).
130    INTERRUPTED         Stopped by Ctrl-C (128 + SIGINT, as shells report it).
=====  ==================  =====================================================================
"""

from __future__ import annotations

from enum import IntEnum


class RC(IntEnum):
    """Process exit codes of ``storagectl`` (see the module docstring for their meaning)."""

    OK = 0
    CHECKS_FAILED = 1
    ANSIBLE_FAILED = 2
    INVALID_INVENTORY = 3
    LAB_ERROR = 4
    USAGE = 64
    INTERNAL_ERROR = 70
    INTERRUPTED = 130
