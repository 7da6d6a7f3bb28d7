"""Suggestion evidence reads as words in the stakeholder report, not as a JSON dump."""

from studio.core.workflows.report import _evidence_text


def test_evidence_is_plain_words_with_rounded_numbers():
    text = _evidence_text(
        {"share": 0.155234567, "value": 18.0, "unit": "time_us", "cycles_per_mac": None, "macs": 0}
    )
    assert text == "share 0.1552 · value 18.0 · unit time us · macs 0"
    assert "{" not in text and "_" not in text
