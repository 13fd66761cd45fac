"""The `crm: { record_url }` template: checked when the rules load (FILE:LINE:COL: CODE), and filled
with lead attributes that may be hostile without ever changing the link's scheme or host.

Expected links are built here with urllib directly, not with leadflow's code."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

from leadflow.core import LeadflowError
from leadflow.rules import load_rules
from tests.leadflow_cli import leadflow

BASE = "leadflow: 1\nscoring:\n  fit:\n    - { id: any, when: { email: { exists: true } }, points: 1 }\n"
TEMPLATE = "https://app.hubspot.com/contacts/123/record/0-1/{hubspot_id}"


def rules_with(tmp_path: Path, crm: str) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.yaml").write_text(BASE + crm, encoding="utf-8")
    return directory


def problems(tmp_path: Path, crm: str) -> list[tuple[str, int, int]]:
    with pytest.raises(LeadflowError) as caught:
        load_rules(str(rules_with(tmp_path, crm)))
    return [(p.code, p.location.line, p.location.column) for p in caught.value.problems]


@pytest.mark.parametrize("template, code", [
    ("ftp://files.example/{id}", "CRM_URL_SCHEME"),
    ("javascript:alert({id})", "CRM_URL_SCHEME"),
    ("app.hubspot.com/contacts/{id}", "CRM_URL_SCHEME"),  # no scheme at all
    ("https://{portal}.hubspot.com/contacts/{id}", "CRM_URL_HOST"),  # an attribute would choose the site
    ("https://crm.example:{port}/{id}", "CRM_URL_HOST"),
    ("https://{user}@crm.example/{id}", "CRM_URL_HOST"),
    ("https:///{id}", "BAD_CRM_URL"),  # no host
    ("https://crm.example/contacts/123", "BAD_CRM_URL"),  # no placeholder: every lead opens the same page
    ("https://crm.example/{id", "BAD_CRM_URL"),  # a brace that is not a placeholder
    ("https://crm.example/{ id }", "BAD_CRM_URL"),
    ("https://crm.example/a b/{id}", "BAD_CRM_URL"),
    ("https://crm.example/café/{id}", "BAD_CRM_URL"),
    ("https://[::1/{id}", "BAD_CRM_URL"),
    ("https://crm.example/" + "x" * 3000 + "/{id}", "CRM_URL_TOO_LONG"),
])
def test_a_bad_template_is_reported_at_its_value(tmp_path, template, code):
    # line 5, column 20: where the quoted value starts in `crm: { record_url: "..." }`
    assert problems(tmp_path, f'crm: {{ record_url: "{template}" }}\n') == [(code, 5, 20)]


def test_crm_keys_are_checked_like_every_section(tmp_path):
    assert sorted(problems(tmp_path, f'crm:\n  record_uri: "{TEMPLATE}"\n')) == [("MISSING_KEY", 6, 3),
                                                                                  ("UNKNOWN_KEY", 6, 3)]
    assert problems(tmp_path, "crm:\n  record_url: 12\n") == [("WRONG_TYPE", 6, 15)]


def test_rules_check_prints_file_line_column_and_the_hint(tmp_path):
    directory = rules_with(tmp_path, 'crm:\n  record_url: "https://{portal}.hubspot.com/contacts/{id}"\n')
    result = leadflow("rules", "check", str(directory))
    assert result.returncode == 1
    header = f"{directory / 'rules.yaml'}:6:15: CRM_URL_HOST: a placeholder is part of the host"
    assert result.stderr.splitlines()[0].startswith(header), result.stderr
    assert "put placeholders in the path or the query" in result.stderr


HOSTILE = ["../../evil.example/x", "//evil.example", "@evil.example", "x?admin=1#frag", "\\\\evil.example",
           "javascript:alert(1)", "%2e%2e%2f", "a\nb\r\nc", "名前 with spaces", "https://evil.example/", "x" * 2900]


@pytest.fixture
def ruleset(tmp_path):
    return load_rules(str(rules_with(tmp_path, f'crm:\n  record_url: "{TEMPLATE}?from={{source.name}}"\n')))


@pytest.mark.parametrize("value", HOSTILE)
def test_a_hostile_attribute_changes_the_record_never_the_site(ruleset, value):
    url = ruleset.record_url("lead-1", {"hubspot_id": value, "source": {"name": "web form"}})
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("https", "app.hubspot.com")
    assert parts.path == "/contacts/123/record/0-1/" + quote(value, safe="")
    assert unquote(parts.path.rsplit("/", 1)[1]) == value  # the CRM receives exactly the attribute
    assert parts.query == "from=web%20form" and parts.fragment == ""


WEB = {"name": "web"}


@pytest.mark.parametrize("attributes", [
    {"source": WEB}, {"hubspot_id": "", "source": WEB}, {"hubspot_id": "   ", "source": WEB},
    {"hubspot_id": None, "source": WEB}, {"hubspot_id": True, "source": WEB},
    {"hubspot_id": {"id": 1}, "source": WEB}, {"hubspot_id": [1], "source": WEB},
    {"hubspot_id": "\ud800", "source": WEB},  # a lone surrogate cannot be encoded
    {"hubspot_id": "x" * 3000, "source": WEB},  # the link would be over Slack's 3000 characters
    {"hubspot_id": "1"},  # `source.name` missing
])
def test_no_link_when_an_attribute_is_missing_or_unusable(ruleset, attributes):
    assert ruleset.record_url("lead-1", attributes) is None


def test_numbers_are_ids_as_a_spreadsheet_meant_them(ruleset):
    source = {"name": "x"}
    assert ruleset.record_url("lead-1", {"hubspot_id": 51234, "source": source}).endswith("/0-1/51234?from=x")
    assert ruleset.record_url("lead-1", {"hubspot_id": 51234.0, "source": source}).endswith("/0-1/51234?from=x")


def test_rules_without_crm_give_no_link(tmp_path):
    assert load_rules(str(rules_with(tmp_path, ""))).record_url("1", {"hubspot_id": "1"}) is None


def test_descriptions_fall_back_to_the_rule_id(tmp_path):
    rs = load_rules(str(rules_with(tmp_path, 'stages:\n  mql: { when: { score: { at_least: 1 } }, '
                                             'description: "  ready for\\n marketing " }\n')))
    assert rs.describe("any") == "any"
    assert rs.describe("stages.mql") == "ready for marketing"  # on one line, as a card shows it
    assert rs.describe("stages.sql") == "stages.sql"


def test_a_link_of_exactly_3000_characters_is_kept_and_one_more_is_not(ruleset):
    fixed = len("https://app.hubspot.com/contacts/123/record/0-1/?from=x")
    assert len(ruleset.record_url("lead-1", {"hubspot_id": "7" * (3000 - fixed), "source": {"name": "x"}})) == 3000
    assert ruleset.record_url("lead-1", {"hubspot_id": "7" * (3001 - fixed), "source": {"name": "x"}}) is None


def test_every_bundled_rule_and_gate_says_what_it_means_for_the_rep():
    """The demo's cards show descriptions: a bundled rule without one would show a bare id."""
    rs = load_rules(str(Path(__file__).resolve().parents[2] / "rules"))
    assert rs.rules and [r.id for r in rs.rules if not r.description.strip()] == []
    assert [g for g in ("stages.mql", "stages.sql") if rs.describe(g) == g] == []


def test_the_lead_placeholder_is_the_lead_id_whatever_the_attributes_say(tmp_path):
    """Imports key leads by the CRM's record id, so `{lead}` alone links a HubSpot or Salesforce import."""
    rs = load_rules(str(rules_with(tmp_path, 'crm: { record_url: "https://crm.example/r/{lead}" }\n')))
    assert rs.record_url("00Q/5 e#x", {"lead": "evil"}) == "https://crm.example/r/" + quote("00Q/5 e#x", safe="")
