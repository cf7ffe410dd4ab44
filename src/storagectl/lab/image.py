"""The lab's machine image: a debootstrapped Debian 12 root, built once, imported into podman."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from storagectl.lab.errors import LabError
from storagectl.lab.proc import Progress, elapsed, run, spawn, succeeds, watch

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "iproute2",
    "sudo",
    "procps",
    "ca-certificates",
)
CACHE_DIR = Path("/var/cache/storagectl/lab")
ROOTFS = CACHE_DIR / f"rootfs-{SUITE}"
PARTIAL_PREFIX = f"rootfs-{SUITE}.partial-"
IMAGE = f"localhost/storagectl-lab:{SUITE}"
#: Bump when ``prepare_rootfs`` changes: an image with another revision is imported again.
IMAGE_REVISION = "2"
REVISION_LABEL = "storagectl.lab.revision"

DEBOOTSTRAP_TIMEOUT = 30 * 60.0
IMPORT_TIMEOUT = 10 * 60.0

#: Units that make no sense in a lab container: apt's timers would take the dpkg lock
#: in the middle of a deployment.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
)

#: ssh.service drop-in: every machine makes its own host keys on first boot.
SSH_HOSTKEYS_DROPIN = """\
# storagectl lab: each machine generates its own SSH host keys at first boot.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""


def ensure_image(progress: Progress) -> str:
    """Build (debootstrap) and import the image unless they exist; return the image name."""
    if image_revision() == IMAGE_REVISION:
        progress(f"==> image {IMAGE}: cached")
        return IMAGE
    outdated = image_id()
    if ROOTFS.is_dir():
        progress(f"==> root filesystem {ROOTFS}: cached")
    else:
        build_rootfs(progress)
    prepare_rootfs(ROOTFS)
    import_image(ROOTFS, progress)
    if outdated:  # an image of an older revision, now untagged; kept while containers use it
        run(["podman", "image", "rm", outdated], check=False)
    return IMAGE


def image_id() -> str | None:
    """The ID of the image ``IMAGE`` names, or None when there is none."""
    result = run(["podman", "image", "inspect", "--format", "{{.Id}}", IMAGE], check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def image_revision() -> str | None:
    """The revision label of the podman image, or None when there is no such image."""
    if not succeeds(["podman", "image", "exists", IMAGE]):
        return None
    fmt = '{{index .Labels "' + REVISION_LABEL + '"}}'
    result = run(["podman", "image", "inspect", "--format", fmt, IMAGE], check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def debootstrap_command(target: Path) -> list[str]:
    """The debootstrap command line that builds the root into ``target``."""
    return [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(target),
        MIRROR,
    ]


def build_rootfs(progress: Progress) -> None:
    """Debootstrap into a temporary directory, then rename it to ``ROOTFS``."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    remove_partial_builds()
    partial = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=CACHE_DIR))
    log = CACHE_DIR / "debootstrap.log"
    start = time.monotonic()
    progress(f"==> debootstrap {SUITE} into {ROOTFS} (1.5 to 3 minutes; log in {log})")
    try:
        with log.open("wb") as out:
            proc = spawn(debootstrap_command(partial), stdout=out, stderr=subprocess.STDOUT)
            watch([proc], log=log, progress=progress, timeout=DEBOOTSTRAP_TIMEOUT)
        partial.rename(ROOTFS)
    except BaseException:
        remove_tree(partial)
        raise
    progress(f"    debootstrap: done in {elapsed(start)}")


def remove_partial_builds() -> None:
    """Remove what an interrupted build left in the cache directory."""
    for path in CACHE_DIR.glob(f"{PARTIAL_PREFIX}*"):
        remove_tree(path)


def remove_tree(path: Path) -> None:
    """Unmount whatever is mounted below ``path`` (debootstrap mounts /proc), then delete it."""
    for mountpoint in mounts_below(path):
        run(["umount", "-l", str(mountpoint)], check=False)
    if mounts_below(path):
        raise LabError(f"{path} still has mounts below it: unmount them, then run again.")
    shutil.rmtree(path, ignore_errors=True)


def mounts_below(path: Path) -> list[Path]:
    """Mount points strictly below ``path``, deepest first."""
    prefix = f"{path.resolve()}/"
    found = []
    with Path("/proc/self/mountinfo").open(encoding="utf-8") as handle:
        for line in handle:
            mountpoint = line.split()[4].encode().decode("unicode_escape")
            if mountpoint.startswith(prefix):
                found.append(Path(mountpoint))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def prepare_rootfs(root: Path) -> None:
    """Make the debootstrapped root fit to boot as a lab machine (idempotent)."""
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    ssh_dir.chmod(0o700)
    system = root / "etc" / "systemd" / "system"
    _symlink(system / "multi-user.target.wants" / "ssh.service", "/lib/systemd/system/ssh.service")
    for unit in MASKED_UNITS:
        _symlink(system / unit, "/dev/null")
    dropin = system / "ssh.service.d" / "storagectl-lab-hostkeys.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text(SSH_HOSTKEYS_DROPIN, encoding="utf-8")
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    # An empty machine-id: systemd gives each machine its own at first boot (from podman's
    # container_uuid), unless it finds D-Bus's id, which dbus's postinst put in the image.
    (root / "etc" / "machine-id").write_text("", encoding="utf-8")
    _symlink(root / "var" / "lib" / "dbus" / "machine-id", "/etc/machine-id")
    (root / "etc" / "storagectl-lab-revision").write_text(IMAGE_REVISION + "\n", encoding="utf-8")


def _symlink(link: Path, target: str) -> None:
    """Make ``link`` a symlink to ``target``, replacing whatever is there."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and str(link.readlink()) == target:
        return
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)


def import_image(root: Path, progress: Progress) -> None:
    """``tar -C root -c . | podman import`` as two processes, no shell."""
    log = CACHE_DIR / "import.log"
    start = time.monotonic()
    progress(f"==> podman import {IMAGE} (about 20 s)")
    with log.open("wb") as out:
        tar = spawn(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."],
            stdout=subprocess.PIPE,
            stderr=out,
        )
        assert tar.stdout is not None  # noqa: S101 - set by stdout=PIPE
        podman = spawn(
            [
                "podman",
                "import",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                f"LABEL {REVISION_LABEL}={IMAGE_REVISION}",
                "-",
                IMAGE,
            ],
            stdin=tar.stdout,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        tar.stdout.close()  # podman holds the only reader now
        watch([tar, podman], log=log, progress=progress, timeout=IMPORT_TIMEOUT)
    progress(f"    podman import: done in {elapsed(start)}")
