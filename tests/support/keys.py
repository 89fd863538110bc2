"""The secrets of tests/data/policy.toml, for signing."""

SECRETS = {
    "LTAIalice": "alice-secret",
    "LTAIalice2": "alice2-secret",
    "LTAIdisabled": "disabled-secret",
    "LTAIreadonly": "readonly-secret",
    "LTAIquota": "quota-secret",
    "LTAIbob": "bob-secret",
    "LTAIops": "ops-secret",
    "LTAInobody": "nobody-secret",
}
