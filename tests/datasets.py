"""Labelled data for the tests: the shared X Education leads when they are beside the clone, and a
generated stand-in that every clone has.

The real leads are read in place from `../shared/datasets/` (relative to the repository's parent;
`LEADFLOW_DATASETS` may name another folder), never copied into the project. Tests that need them
skip, with one line saying where to put them, when they are absent. The generated CSV has the same
columns as the real one, so the X Education mapping and rule sets work on both.
"""
from __future__ import annotations

import csv
import math
import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "rules" / "examples" / "x-education"


def datasets_dir() -> Path:
    if os.environ.get("LEADFLOW_DATASETS"):
        return Path(os.environ["LEADFLOW_DATASETS"])
    return ROOT.parent / "shared" / "datasets"


def dataset(*parts: str) -> Path:
    """The shared dataset file, or skip the test that asked for it."""
    path = datasets_dir().joinpath(*parts)
    if not path.is_file():
        why = (f"shared dataset {'/'.join(parts)} absent: put the team's shared datasets folder at "
               "../shared/datasets beside the clone (CI has it) or set LEADFLOW_DATASETS to it")
        if os.environ.get("LEADFLOW_REQUIRE_DATASETS"):  # CI: a missing dataset is a failure, not a skip
            pytest.fail(why)
        pytest.skip(why)
    return path


# -- the generated stand-in -------------------------------------------------------------------------
HEADER = ["Prospect ID", "Lead Number", "Lead Origin", "Lead Source", "Do Not Email", "Do Not Call", "Converted",
          "TotalVisits", "Total Time Spent on Website", "Page Views Per Visit", "Last Activity", "Country",
          "Specialization", "How did you hear about X Education", "What is your current occupation",
          "What matters most to you in choosing a course", "Search", "Newspaper Article", "X Education Forums",
          "Digital Advertisement", "Through Recommendations", "Tags", "City",
          "A free copy of Mastering The Interview", "Last Notable Activity", "Asymmetrique Activity Index",
          "Asymmetrique Profile Index", "Asymmetrique Activity Score", "Asymmetrique Profile Score"]

# value -> effect on the log-odds of converting. The start rules get some of these right, some wrong
# (a chat predicts *not* buying) and miss one entirely ("Converted to Lead"), so tuning has work to do.
ORIGIN = {"Landing Page Submission": 0.0, "API": -0.3, "Lead Add Form": 2.5, "Lead Import": -0.5}
SOURCE = {"Google": 0.0, "Direct Traffic": -0.2, "Organic Search": 0.0, "Olark Chat": -0.6, "Reference": 1.2}
OCCUPATION = {"Unemployed": 0.0, "Working Professional": 2.2, "Student": -0.8, "Businessman": 0.6, "": 0.0}
ACTIVITY = {"Email Opened": 0.4, "SMS Sent": 1.6, "Olark Chat Conversation": -1.0, "Page Visited on Website": 0.0,
            "Converted to Lead": -4.0, "Email Bounced": -1.2, "Email Link Clicked": 0.5}
ACCEPT_TAGS = ["Will revert after reading the email", "Closed by Horizzon", "Busy"]
REJECT_TAGS = ["Ringing", "Interested in other courses", "Already a student", "invalid number"]


def _pick(rng: random.Random, table: dict) -> str:
    return rng.choice(sorted(table))


def labelled_rows(n: int, seed: int) -> list[dict]:
    """n X Education-like leads whose conversion follows a known logistic model (deterministic)."""
    rng = random.Random(seed)
    extra = random.Random(seed + 1)  # the columns added later draw apart, so the older ones stay as they were
    rows = []
    for i in range(n):
        origin, source = _pick(rng, ORIGIN), _pick(rng, SOURCE)
        occupation = _pick(rng, OCCUPATION)
        activity = rng.choice(sorted(ACTIVITY) + ["Converted to Lead"] * 2)  # common, like in the real data
        seconds = rng.choice([0, rng.randint(10, 2400)])
        visits = rng.randint(0, 12)
        no_email = rng.random() < 0.1
        logit = (-1.3 + ORIGIN[origin] + SOURCE[source] + OCCUPATION[occupation] + ACTIVITY[activity]
                 + 0.0012 * seconds - (1.0 if no_email else 0.0))
        converted = rng.random() < 1 / (1 + math.exp(-logit))
        tag = ""
        if rng.random() < 0.6:  # reps wrote a note for most leads, mostly in line with what happened
            agree = rng.random() < 0.85
            tag = rng.choice(ACCEPT_TAGS if converted == agree else REJECT_TAGS)
        rows.append({
            "Prospect ID": f"gen-{seed}-{i:05d}", "Lead Number": str(700000 + i), "Lead Origin": origin,
            "Lead Source": source, "Do Not Email": "Yes" if no_email else "No", "Do Not Call": "No",
            "Converted": "1" if converted else "0", "TotalVisits": str(visits) if rng.random() > 0.02 else "",
            "Total Time Spent on Website": str(seconds), "Page Views Per Visit": f"{rng.uniform(1, 5):.2f}",
            "Last Activity": activity, "Country": rng.choice(["India", "India", "India", "Singapore", ""]),
            "Specialization": rng.choice(["Select", "Finance Management", "Marketing Management", ""]),
            "How did you hear about X Education": rng.choice(["Select", "Online Search", "Word Of Mouth"]),
            "What is your current occupation": occupation,
            "What matters most to you in choosing a course": rng.choice(["Better Career Prospects", ""]),
            "Search": "No", "Newspaper Article": "No", "X Education Forums": "No", "Digital Advertisement": "No",
            "Through Recommendations": rng.choice(["No"] * 19 + ["Yes"]), "Tags": tag,
            "City": rng.choice(["Mumbai", "Thane & Outskirts", "Select", "Other Cities"]),
            "A free copy of Mastering The Interview": rng.choice(["No", "Yes"]),
            "Last Notable Activity": activity if extra.random() < 0.6 else "Modified",
            "Asymmetrique Activity Index": extra.choice(["01.High", "02.Medium", "03.Low", ""]),
            "Asymmetrique Profile Index": extra.choice(["01.High", "02.Medium", ""]),
            "Asymmetrique Activity Score": extra.choice(["", str(extra.randint(12, 18))]),
            "Asymmetrique Profile Score": extra.choice(["", str(extra.randint(14, 20))])})
    return rows


def write_labelled_csv(path: Path, n: int = 400, seed: int = 7) -> list[dict]:
    """Write the generated leads as a CSV the X Education mapping reads; returns the rows."""
    rows = labelled_rows(n, seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def write_real_sample(path: Path, n: int) -> Path:
    """The header and the first `n` leads of the real X Education training file (skips the test
    when the shared datasets are absent); small enough for CI, real enough to surprise."""
    with open(dataset("x-education", "leads_train.csv"), newline="", encoding="utf-8") as src, \
            open(path, "w", newline="", encoding="utf-8") as dst:
        writer = csv.writer(dst)
        for i, row in enumerate(csv.reader(src)):
            if i > n:
                break
            writer.writerow(row)
    return path
