"""``check-config --diff`` and the reload log show what a reload does to ``[[roles]]`` (#15 §1, #17): a
role added or removed, and which of its fields changed (who may assume it, for how long, its statements)."""

from __future__ import annotations

from pathlib import Path

from gateway.policy import Policy, load_policy
from gateway.policy.diff import diff_policies
from tests.support.sts import ENVIRON, POLICY
from tests.test_reload import edited

TEXT = POLICY.read_text()
READER = '''name = "Reader"
trusted = ["root", "dev", "intern", "auditor"]
max_duration = 7200
'''
DISKS = '''[[roles]]
account = 1111
name = "disks-only"
trusted = ["root"]
statements = [{ effect = "Allow", actions = ["DescribeDisks"] }]
'''


def load(text: str, tmp_path: Path) -> Policy:
    file = tmp_path / "policy.toml"
    file.write_text(text)
    return load_policy(file, environ=ENVIRON)


def test_roles_added_removed_and_changed_are_listed(tmp_path: Path) -> None:
    before = load(TEXT, tmp_path)
    after = load(edited(
        (READER, READER.replace('"intern", ', "").replace("7200", "3600")),
        (DISKS, DISKS.replace("disks-only", "disks-reader")),
        ('actions = ["*"] }]\n\n[[roles]]\naccount = 2222', 'actions = ["Describe*"] }]\n\n[[roles]]\naccount = 2222'),
        base=TEXT), tmp_path)
    assert sorted(diff_policies(before, after).lines()) == sorted([
        "- role 1111/disks-only",
        "+ role 1111/disks-reader",
        "~ role 1111/reader: trusted [auditor, dev, intern, root] -> [auditor, dev, root]; max_duration 7200 -> 3600",
        "~ role 1111/quota-role: statements changed",
    ])
    assert diff_policies(before, after).summary() == "1 role removed, 1 role added, 2 roles changed"
    assert diff_policies(before, load(TEXT, tmp_path)).empty
