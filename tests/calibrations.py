"""calibration.yaml text for tests: the steps each test needs, in the format `rules tune` writes."""
from __future__ import annotations


def calibration_yaml(steps: list[tuple[float, float]], method: str = "isotonic", fitted_on: int | None = None,
                     positives: int | None = None) -> str:
    """A calibration with these (score, probability) steps, and the counts when given."""
    lines = ["calibration:", f"  method: {method}"]
    if fitted_on is not None:
        lines.append(f"  fitted_on: {fitted_on}")
    if positives is not None:
        lines.append(f"  positives: {positives}")
    lines.append("  steps:")
    lines += [f"    - {{score: {score:g}, probability: {probability:g}}}" for score, probability in steps]
    return "\n".join(lines) + "\n"
