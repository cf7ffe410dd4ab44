"""RustFS checks. No RustFS binary runs here: the S3 round trip is run against the real
SeaweedFS S3 gateway of the ``weed`` fixture (any S3 endpoint with the inventory's keys), which
also shows that a server without RustFS's /health/ready is reported not ready. The lab covers a
real RustFS."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from storagectl.checks import run_checks
from storagectl.checks.rustfs import CHECKS
from storagectl.inventory import load_topology
from support.common import write_inventory

if TYPE_CHECKING:
    from support.weed import WeedServer


def test_rustfs_checks_use_the_rustfs_port_and_keys(
    weed: WeedServer, tmp_path: Path, project_root: Path
) -> None:
    host = {
        "ansible_host": weed.address,
        "rustfs_port": weed.s3_port,
        "rustfs_access_key": weed.access_key,
        "rustfs_secret_key": weed.secret_key,
    }
    inventory = write_inventory(tmp_path / "inv", {"rustfs": {"rustfs1": host}})
    topology = load_topology([inventory], basedir=project_root)
    ready, s3 = run_checks(topology, CHECKS, timeout=10)
    base = f"http://{weed.address}:{weed.s3_port}"
    assert ready.endpoint == f"{base}/health/ready"
    assert not ready.ok
    assert ready.detail.endswith(": not ready")
    assert "systemctl status rustfs" in ready.fix
    assert s3.ok, s3.detail
    assert s3.endpoint == base
    assert "read back identical, deleted" in s3.detail


def test_rustfs_is_probed_where_it_binds(
    weed: WeedServer, tmp_path: Path, project_root: Path
) -> None:
    """verify follows rustfs_bind_address, not the storage address (192.0.2.1 answers nothing)."""
    host = {
        "ansible_host": "192.0.2.1",
        "rustfs_bind_address": weed.address,
        "rustfs_port": weed.s3_port,
        "rustfs_access_key": weed.access_key,
        "rustfs_secret_key": weed.secret_key,
    }
    inventory = write_inventory(tmp_path / "inv", {"rustfs": {"rustfs1": host}})
    _, s3 = run_checks(load_topology([inventory], basedir=project_root), CHECKS, timeout=10)
    assert s3.ok, s3.detail
    assert s3.endpoint == f"http://{weed.address}:{weed.s3_port}"


def test_missing_rustfs_keys_name_the_rustfs_variables(tmp_path: Path, project_root: Path) -> None:
    inventory = write_inventory(
        tmp_path / "inv", {"rustfs": {"rustfs1": {"ansible_host": "127.0.0.1", "rustfs_port": 9}}}
    )
    topology = load_topology([inventory], basedir=project_root)
    ready, s3 = run_checks(topology, CHECKS, timeout=5)
    assert not ready.ok
    assert "systemctl start rustfs" in ready.fix
    assert not s3.ok
    assert s3.detail == "rustfs_access_key / rustfs_secret_key are not set for this host"
    assert (
        run_checks(
            load_topology(
                [write_inventory(tmp_path / "none", {"other": {"x": {}}})], basedir=project_root
            ),
            CHECKS,
        )
        == []
    )
