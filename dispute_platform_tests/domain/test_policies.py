"""The shipped policy documents and the chunker that turns them into citable sections.

The rules engine cites fixed sections ("POL-003 §2"), so these tests pin where each rule
lives, not only that the documents parse.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import bpe_openai
import docx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispute_platform.domain.policies import (
    PolicyChunk,
    PolicyFormatError,
    load_policy_chunks,
    parse_policy,
    read_docx_paragraphs,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
POLICIES_DIR = REPO_ROOT / "policies"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_policies.py"
MAX_CHUNK_TOKENS = 220

# id -> (title, category, sections the rules engine cites)
EXPECTED_POLICIES = {
    "POL-001": ("Billing Dispute Resolution", "general", ["1", "2", "3", "4", "5", "6", "7"]),
    "POL-002": ("Duplicate Charges", "duplicate_charge", ["1", "2", "3"]),
    "POL-003": ("Service Outage Compensation", "service_outage", ["1", "2", "3", "4"]),
    "POL-004": ("Cancellation and Refund Windows", "cancellation_refund", ["1", "2", "3", "4"]),
    "POL-005": ("Unauthorized Charges and Fraud", "unauthorized", ["1", "2", "3"]),
    "POL-006": ("Wrong Amount or Plan", "wrong_amount", ["1", "2"]),
    "POL-007": ("Late Fees", "late_fee", ["1", "2", "3"]),
    "POL-008": ("Goodwill Credits by Segment", "goodwill", ["1", "2", "3"]),
}

# citation -> phrases that section must state: the boundaries the rules engine implements.
REQUIRED_PHRASES = {
    "POL-001 §2": [
        "duplicate_charge, service_outage, cancellation_refund, unauthorized, wrong_amount, late_fee, "
        "product_not_received, general",
        "account is active",
        "within 120 days of the charge",
        "unauthorized-charge claims",
        "billed on the charge",
        "still refundable",
    ],
    "POL-001 §4": ["up to and including $1,000.00", "above $1,000.00", "never refunded automatically", "four-eyes"],
    "POL-001 §5": ["never more than the disputed amount", "never more than is still refundable", "original charge"],
    "POL-001 §6": [
        "no delivery 14 or more days after the charge",
        "refunded in full",
        "delivery confirmed",
        "still within 14 days of the charge",
        "re-open",
    ],
    "POL-001 §7": ["escalated to a human reviewer", "POL-008"],
    "POL-002 §2": ["refunded in full", "later", "original charge stays"],
    "POL-002 §3": ["no second charge for the same invoice or period", "denied with an explanation"],
    "POL-003 §2": [
        "account credit, never a refund",
        "Less than 1 hour: no credit",
        "At least 1 hour and at most 4 hours: 10%",
        "More than 4 hours and at most 24 hours: 25%",
        "More than 24 hours: 50%",
    ],
    "POL-003 §3": ["annual price divided by 12", "rounded to the cent", "never more than the disputed amount"],
    "POL-003 §4": ["72 hours ahead", "caused by the customer"],
    "POL-004 §2": ["within 14 days of the renewal charge", "day 0 to day 14 inclusive", "before the renewal"],
    "POL-004 §3": ["day 15 to day 30 inclusive", "Each started month counts as used", "11/12", "rounded to the cent"],
    "POL-004 §4": ["after day 14", "after day 30", "no cancellation request on record", "denied"],
    "POL-005 §2": [
        "escalated to the fraud team and a human reviewer",
        "never issues an automatic refund",
        "whatever the amount",
        "no 120-day window",
    ],
    "POL-005 §3": ["masked", "never ask for a full card number"],
    "POL-006 §2": [
        "difference between the amount charged and the contracted price",
        "not above the contracted price",
        "denied with an explanation",
    ],
    "POL-007 §2": [
        "first late fee in any 12 months",
        "no other late fee was charged in the 12 months before it",
        "good standing",
        "denied",
    ],
    "POL-007 §3": ["active", "not past due or in collections"],
    "POL-008 §2": ["Enterprise", "up to 10% of the monthly fee"],
    "POL-008 §3": ["no automatic goodwill credit", "escalated to a reviewer"],
}


@pytest.fixture(scope="module")
def chunks() -> list[PolicyChunk]:
    return load_policy_chunks(POLICIES_DIR)


@pytest.fixture(scope="module")
def by_citation(chunks: list[PolicyChunk]) -> dict[str, PolicyChunk]:
    return {chunk.citation: chunk for chunk in chunks}


def _write_docx(path: Path, paragraphs: list[tuple[str, str]]) -> Path:
    document = docx.Document()
    for style, text in paragraphs:
        document.add_paragraph(text, style=style)
    document.save(str(path))
    return path


# --- the shipped documents ---------------------------------------------------------------


def test_every_policy_is_shipped_once(chunks: list[PolicyChunk]) -> None:
    assert sorted({chunk.policy_id for chunk in chunks}) == sorted(EXPECTED_POLICIES)
    assert len({chunk.chunk_id for chunk in chunks}) == len(chunks)


@pytest.mark.parametrize("policy_id", sorted(EXPECTED_POLICIES))
def test_policy_metadata_and_fixed_sections(chunks: list[PolicyChunk], policy_id: str) -> None:
    title, category, sections = EXPECTED_POLICIES[policy_id]
    own = [chunk for chunk in chunks if chunk.policy_id == policy_id]
    assert {(chunk.title, chunk.category) for chunk in own} == {(title, category)}
    numbers = [chunk.section for chunk in own]
    # Fixed sections come first and in order; extra sections may only follow them.
    assert numbers[: len(sections)] == sections
    assert numbers == [str(n) for n in range(1, len(numbers) + 1)]


@pytest.mark.parametrize("citation", sorted(REQUIRED_PHRASES))
def test_rules_live_in_their_fixed_section(by_citation: dict[str, PolicyChunk], citation: str) -> None:
    text = by_citation[citation].text
    missing = [phrase for phrase in REQUIRED_PHRASES[citation] if phrase not in text]
    assert not missing, f"{citation} does not state {missing}"


def test_outage_credit_percentages_are_only_in_the_schedule(by_citation: dict[str, PolicyChunk]) -> None:
    schedule = by_citation["POL-003 §2"]
    assert all(share in schedule.text for share in ("10%", "25%", "50%"))
    assert schedule.section_title == "Credit schedule"


def test_chunk_identity_and_text_shape(by_citation: dict[str, PolicyChunk]) -> None:
    chunk = by_citation["POL-003 §2"]
    assert chunk.chunk_id == "POL-003#2"
    assert chunk.citation == "POL-003 §2"
    lines = chunk.text.splitlines()
    assert lines[0] == "2. Credit schedule"
    assert "- Less than 1 hour: no credit." in lines


def test_sub_sections_are_merged_into_their_section(by_citation: dict[str, PolicyChunk]) -> None:
    text = by_citation["POL-004 §3"].text
    assert "3.1 Window" in text and "3.2 Calculation" in text
    assert not any(chunk.section.count(".") for chunk in by_citation.values())


def test_every_chunk_fits_the_retrieval_budget(chunks: list[PolicyChunk]) -> None:
    encoding = bpe_openai.get_encoding("o200k_base")
    sizes = {chunk.citation: len(encoding.encode(chunk.text)) for chunk in chunks}
    too_big = {citation: size for citation, size in sizes.items() if size >= MAX_CHUNK_TOKENS}
    assert not too_big, f"sections over {MAX_CHUNK_TOKENS} tokens: {too_big}"


def test_documents_use_the_documented_styles() -> None:
    paragraphs = read_docx_paragraphs(POLICIES_DIR / "POL-003-service-outage-compensation.docx")
    assert paragraphs[0] == ("Title", "Service Outage Compensation")
    assert paragraphs[1][1].startswith("Policy ID: POL-003 | Category: service_outage | Version 1.0")
    assert ("Heading 1", "2. Credit schedule") in paragraphs
    assert ("Heading 2", "3.1 Monthly fee") in paragraphs
    assert ("List Bullet", "More than 24 hours: 50% of the monthly fee.") in paragraphs


def test_core_properties_identify_the_policy() -> None:
    props = docx.Document(str(POLICIES_DIR / "POL-005-unauthorized-charges-fraud.docx")).core_properties
    assert props.title == "Unauthorized Charges and Fraud"
    assert props.subject == "unauthorized"
    assert props.identifier == "POL-005"
    assert "POL-005" in props.keywords


# --- the build script ----------------------------------------------------------------------


def _run_build(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BUILD_SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False)


def test_committed_documents_match_their_sources() -> None:
    result = _run_build("--check")
    assert result.returncode == 0, result.stderr


def test_build_is_deterministic_and_check_catches_a_stale_document(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(POLICIES_DIR / "src", src)
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert _run_build("--src-dir", str(src), "--out-dir", str(out)).returncode == 0
    names = sorted(p.name for p in first.glob("*.docx"))
    assert len(names) == len(EXPECTED_POLICIES)
    assert all((first / name).read_bytes() == (second / name).read_bytes() for name in names)
    assert all((first / name).read_bytes() == (POLICIES_DIR / name).read_bytes() for name in names)

    source = src / "POL-007-late-fees.md"
    source.write_text(source.read_text(encoding="utf-8").replace("12 months", "six months"), encoding="utf-8")
    stale = _run_build("--check", "--src-dir", str(src), "--out-dir", str(first))
    assert stale.returncode != 0
    assert "POL-007-late-fees.docx" in stale.stderr


def test_build_rejects_markup_outside_the_subset(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    original = (POLICIES_DIR / "src" / "POL-007-late-fees.md").read_text(encoding="utf-8")
    (src / "POL-007-late-fees.md").write_text(original + "\n| a | table |\n", encoding="utf-8")
    result = _run_build("--src-dir", str(src), "--out-dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "tables are not supported" in result.stderr


# --- malformed documents -----------------------------------------------------------------


def test_document_without_policy_id_names_the_file(tmp_path: Path) -> None:
    _write_docx(
        tmp_path / "POL-099-no-id.docx",
        [("Title", "Refund Policy"), ("Heading 1", "1. Scope"), ("Normal", "Everything.")],
    )
    with pytest.raises(PolicyFormatError, match=r"POL-099-no-id\.docx.*no policy id"):
        load_policy_chunks(tmp_path)


def test_document_without_numbered_section_names_the_file(tmp_path: Path) -> None:
    path = _write_docx(
        tmp_path / "unnumbered.docx",
        [
            ("Title", "Refund Policy"),
            ("Normal", "Policy ID: POL-098 | Category: general"),
            ("Heading 1", "Scope"),
            ("Normal", "Everything."),
        ],
    )
    with pytest.raises(PolicyFormatError, match=r"unnumbered\.docx.*no numbered section"):
        parse_policy(read_docx_paragraphs(path), path.name)


def test_non_docx_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "POL-097-notes.docx"
    path.write_text("just text, not a Word document", encoding="utf-8")
    with pytest.raises(PolicyFormatError, match=r"POL-097-notes\.docx"):
        read_docx_paragraphs(path)


def test_zip_that_is_not_a_word_document_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "archive.docx"
    shutil.make_archive(str(tmp_path / "archive"), "zip", root_dir=POLICIES_DIR / "src")
    (tmp_path / "archive.zip").rename(path)
    with pytest.raises(PolicyFormatError, match=r"archive\.docx"):
        read_docx_paragraphs(path)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy_chunks(tmp_path / "nowhere")


def test_two_files_with_one_policy_id_are_rejected(tmp_path: Path) -> None:
    source = POLICIES_DIR / "POL-007-late-fees.docx"
    shutil.copy(source, tmp_path / "a.docx")
    shutil.copy(source, tmp_path / "b.docx")
    with pytest.raises(PolicyFormatError, match=r"b\.docx.*POL-007.*a\.docx"):
        load_policy_chunks(tmp_path)


# --- robustness of parse_policy --------------------------------------------------------------


def test_loose_heading_styles_and_numbering_are_recognised() -> None:
    paragraphs = [
        ("", ""),
        ("Title", "Refund  Policy"),
        ("Subtitle", "Brightwave Software, Inc."),
        ("Normal", "Policy ID: pol-042 | Category: late_fee | Version 2.0"),
        ("Heading 1 Char", "1 Scope"),
        ("Normal", "   "),
        ("Normal", "Applies\tto everything."),
        ("Heading Policy Section", "2. Remedy"),
        ("Heading 2", "2.1 Detail"),
        ("List Bullet 2", "first item"),
        ("Heading 1", "Notes without a number"),
        ("Normal", "Still part of section 2."),
    ]
    chunks = parse_policy(paragraphs, "loose.docx")
    assert [(c.chunk_id, c.section_title) for c in chunks] == [("POL-042#1", "Scope"), ("POL-042#2", "Remedy")]
    assert chunks[0].title == "Refund Policy"
    assert chunks[0].category == "late_fee"
    assert chunks[0].text == "1 Scope\nApplies to everything."
    assert chunks[1].text == "2. Remedy\n2.1 Detail\n- first item\nNotes without a number\nStill part of section 2."


def test_numbered_text_in_a_body_style_is_not_a_section() -> None:
    paragraphs = [
        ("Title", "T"),
        ("Normal", "Policy ID: POL-041 | Category: general"),
        ("Heading 1", "1. Scope"),
        ("Normal", "2 hours of outage earn nothing extra."),
    ]
    assert [c.section for c in parse_policy(paragraphs, "x.docx")] == ["1"]


def test_duplicate_section_number_is_rejected() -> None:
    paragraphs = [
        ("Title", "T"),
        ("Normal", "Policy ID: POL-040 | Category: general"),
        ("Heading 1", "1. Scope"),
        ("Heading 1", "1. Scope again"),
    ]
    with pytest.raises(PolicyFormatError, match=r"dup\.docx.*section 1"):
        parse_policy(paragraphs, "dup.docx")


_STYLES = st.sampled_from(["Title", "Normal", "Heading 1", "Heading 2", "Heading 1 Char", "List Bullet", "", "Body"])
_TEXTS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["1. Scope", "2 Remedy", "2.1 Sub", "Policy ID: POL-001 | Category: general", "§3 X"]),
)


@given(st.lists(st.tuples(_STYLES, _TEXTS), max_size=25))
def test_parse_policy_either_chunks_or_raises_its_own_error(paragraphs: list[tuple[str, str]]) -> None:
    try:
        chunks = parse_policy(paragraphs, "fuzz.docx")
    except PolicyFormatError as error:
        assert "fuzz.docx" in str(error)
        return
    assert chunks
    assert len({chunk.section for chunk in chunks}) == len(chunks)
    assert all(chunk.text and chunk.section_title for chunk in chunks)
