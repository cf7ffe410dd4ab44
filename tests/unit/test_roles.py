"""Static contracts of the roles: argument specs match defaults, templates carry the header."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "defaults" / "main.yml").is_file())
# Variable prefixes a role may use besides its own name. seaweedfs_: the cluster-wide SeaweedFS
# contract. patroni: postgresql_port, the PostgreSQL contract the haproxy and filer roles and the
# checks read (marked "noqa: var-naming[no-role-prefix]" there).
SHARED_PREFIXES = {"patroni": ("postgresql_",)}


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_argument_specs_document_every_default(role: Path) -> None:
    defaults = set(_load(role / "defaults" / "main.yml"))
    spec = _load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    required = {name for name, opt in spec.items() if opt.get("required")}
    assert set(spec) - required == defaults, (
        f"{role.name}: argument_specs and defaults/main.yml differ: "
        f"only in specs {sorted(set(spec) - required - defaults)}, "
        f"only in defaults {sorted(defaults - set(spec))}"
    )
    assert not required & defaults, f"{role.name}: a required variable has a default"
    for name, opt in spec.items():
        prefixes = (role.name + "_", "seaweedfs_", *SHARED_PREFIXES.get(role.name, ()))
        assert name.startswith(prefixes), name
        assert opt.get("description"), f"{role.name}: {name} has no description"


@pytest.mark.parametrize(
    "template", sorted(ROLES.glob("*/templates/**/*.j2")), ids=lambda p: p.name
)
def test_templates_start_with_ansible_managed(template: Path) -> None:
    text = template.read_text()
    first = next(line for line in text.splitlines() if not line.startswith("{#"))
    if template.suffix == ".j2" and template.stem.endswith(".json"):
        pytest.skip("JSON has no comments")
    if template.name in WRITTEN_ONCE:
        # "local changes are overwritten" would be false: the daemon owns the file afterwards.
        assert first.startswith("# Written once by storagectl (Ansible)"), template
        return
    assert "ansible_managed" in first, f"{template} does not start with the ansible_managed header"


#: Templates a role writes once (``force: false``) and the daemon then rewrites itself.
WRITTEN_ONCE = frozenset({"sentinel.conf.j2"})


def test_secrets_have_no_defaults() -> None:
    for role in ROLE_DIRS:
        for name in _load(role / "defaults" / "main.yml"):
            if name.endswith(("_secret_key", "_password", "_access_key")):
                pytest.fail(f"{role.name} defines a default for the secret {name}")
