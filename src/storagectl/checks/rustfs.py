"""RustFS checks: every RustFS node is ready and carries an S3 round trip with the inventory's
keys.

What the rustfs role deploys (its contract with these checks): the hosts of the ``rustfs`` group
run the systemd unit ``rustfs``, serving S3 and the health endpoints on
``http://rustfs_bind_address:rustfs_port`` (default the storage address, 9000) with the keys
``rustfs_access_key`` / ``rustfs_secret_key``. RustFS answers ``GET /health/ready`` with 200 once
it can serve requests (503 before; ``rustfs/src/server/prefix.rs``).
"""

from __future__ import annotations

import requests

from storagectl.checks.base import CheckContext, CheckResult, host_check, unit_fix
from storagectl.checks.transfer import http_error, http_session, s3_transfer
from storagectl.endpoints import rustfs_url as _url
from storagectl.inventory import Host, Topology
from storagectl.inventory.groups import RUSTFS

COMPONENT = "rustfs"

RUSTFS_UNIT = "rustfs"
READY_PATH = "/health/ready"
KEY_VARS = ("rustfs_access_key", "rustfs_secret_key")


def rustfs_url(topology: Topology, host: Host) -> str:
    """``http://<rustfs_bind_address>:<rustfs_port>`` of a RustFS node."""
    return _url(host)


def _ready_url(topology: Topology, host: Host) -> str:
    return rustfs_url(topology, host) + READY_PATH


def rustfs_fix(host: Host, reason: str = "") -> str:
    return unit_fix(host, RUSTFS_UNIT, reason)


@host_check("rustfs ready", COMPONENT, group=RUSTFS, endpoint=_ready_url)
def rustfs_ready(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """``GET /health/ready`` answers 200."""
    url = _ready_url(topology, host)
    try:
        with http_session() as session:
            response = session.get(url, timeout=ctx.http_timeout)
    except requests.RequestException as exc:
        return CheckResult(
            "rustfs ready",
            COMPONENT,
            False,
            http_error(exc),
            fix=rustfs_fix(host, f"start RustFS on {host.name} (systemctl start {RUSTFS_UNIT})"),
        )
    if response.status_code != 200:
        return CheckResult(
            "rustfs ready",
            COMPONENT,
            False,
            f"HTTP {response.status_code}: not ready",
            fix=rustfs_fix(
                host, "RustFS runs but is not ready (drives missing, or too few peers online)"
            ),
        )
    return CheckResult("rustfs ready", COMPONENT, True, "HTTP 200")


@host_check("rustfs s3 round trip", COMPONENT, group=RUSTFS, endpoint=rustfs_url)
def rustfs_s3_round_trip(topology: Topology, host: Host, ctx: CheckContext) -> CheckResult:
    """Create the verify bucket if missing, PUT/GET (byte-identical)/DELETE an object."""
    access, secret = KEY_VARS
    return s3_transfer(
        rustfs_url(topology, host),
        str(host.var(access, default="") or ""),
        str(host.var(secret, default="") or ""),
        ctx,
        check="rustfs s3 round trip",
        component=COMPONENT,
        service_fix=rustfs_fix(host),
        key_vars=KEY_VARS,
    )


CHECKS = [rustfs_ready, rustfs_s3_round_trip]
