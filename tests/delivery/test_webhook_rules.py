"""`leadflow rules check` on a `webhooks:` section: what is wrong, where (FILE:LINE:COL) and what was
probably meant; and a correct section loads with its subscriptions."""
from __future__ import annotations

import json
import textwrap

from tests.leadflow_cli import leadflow

GOOD = """\
    leadflow: 1
    webhooks:
      - name: crm
        url_env: CRM_HOOK_URL
        secret_env: CRM_HOOK_SECRET
        kinds: [stage_changed, sql_accepted]
    """


def check(tmp_path, text: str):
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rules.yaml").write_text(textwrap.dedent(text))
    return leadflow("--rules", rules, "rules", "check"), str(rules / "rules.yaml")


def test_a_correct_section_passes(tmp_path):
    proc, _ = check(tmp_path, GOOD)
    assert proc.returncode == 0, proc.stderr


def test_a_misspelt_kind_is_reported_where_it_is_with_the_closest_kind(tmp_path):
    proc, path = check(tmp_path, GOOD.replace("sql_accepted]", "sql_acepted]"))
    assert proc.returncode == 1
    assert f"{path}:6:28: BAD_VALUE: 'sql_acepted' is not allowed here" in proc.stderr
    assert "hint: did you mean 'sql_accepted'?" in proc.stderr


def test_a_url_where_the_variable_name_belongs_is_refused(tmp_path):
    proc, path = check(tmp_path, GOOD.replace("url_env: CRM_HOOK_URL", "url_env: https://hooks.example/x?token=1"))
    assert proc.returncode == 1
    assert f"{path}:4:14: BAD_ENV_NAME: url_env names an environment variable" in proc.stderr
    assert "URLs and secrets stay out of git" in proc.stderr


def test_a_missing_secret_variable_and_a_name_used_twice_are_both_reported(tmp_path):
    text = GOOD.replace("        secret_env: CRM_HOOK_SECRET\n", "").rstrip(" ") + textwrap.indent(textwrap.dedent("""\
          - name: crm
            url_env: OTHER_URL
            secret_env: OTHER_SECRET
            kinds: [sql_assigned]
        """), "      ")
    proc, path = check(tmp_path, text)
    assert proc.returncode == 1
    assert f"{path}:3:5: MISSING_KEY: missing required key 'secret_env'" in proc.stderr
    assert f"{path}:6:11: DUPLICATE_ID: webhook name 'crm' appears twice" in proc.stderr


def test_an_unknown_key_gets_a_did_you_mean(tmp_path):
    proc, path = check(tmp_path, GOOD.replace("kinds:", "kind:"))
    assert proc.returncode == 1
    assert f"{path}:6:5: UNKNOWN_KEY: unknown key 'kind'" in proc.stderr and "did you mean 'kinds'?" in proc.stderr


def test_the_json_schema_lists_the_kinds(tmp_path):
    schema = json.loads(leadflow("rules", "schema", check=True).stdout)
    kinds = schema["properties"]["webhooks"]["items"]["properties"]["kinds"]["items"]["enum"]
    assert kinds == ["stage_changed", "sql_assigned", "sql_accepted", "sql_rejected", "sql_reassigned", "sql_expired"]
