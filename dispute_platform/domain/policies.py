"""Policy documents (.docx) cut into one chunk per numbered section.

A proposal cites policies as "POL-003 §2", so the chunk boundary is the numbered section and
nothing else: sub-sections (2.1, 2.2 ...) are merged into their section, so a citation always
names everything the retrieved text says. The documents are written by people in Word as well
as by `scripts/build_policies.py`, so the parser trusts the number in a heading's text over the
exact style name.

Pure functions over (style, text) pairs; `read_docx_paragraphs` is the only one that does I/O.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

__all__ = [
    "PolicyChunk",
    "PolicyFormatError",
    "load_policy_chunks",
    "parse_policy",
    "read_docx_paragraphs",
]

# "2. Credit schedule", "2 Credit schedule", and the "§2 ..." / "Section 2. ..." spellings a
# person may type. "2.1 Heading" must not match: a sub-section is not a section.
_SECTION_HEADING = re.compile(r"^(?:§\s*|section\s+)?(\d+)(?:\.\s+|\s+)(\S.*)$", re.IGNORECASE)
_POLICY_ID = re.compile(r"\bpolicy\s*id\s*:?\s*([A-Z][A-Z0-9]*-\d+)\b", re.IGNORECASE)
_CATEGORY = re.compile(r"\bcategory\s*:?\s*([A-Za-z][\w-]*)", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class PolicyFormatError(ValueError):
    """A policy document that cannot be read or lacks what a citation needs; names the file."""


class PolicyChunk(BaseModel):
    """One numbered section of one policy: the unit that is embedded, retrieved and cited."""

    model_config = ConfigDict(frozen=True)

    chunk_id: str  # "POL-003#2"
    policy_id: str  # "POL-003"
    title: str  # "Service Outage Compensation"
    category: str  # "service_outage"
    section: str  # "2"
    section_title: str  # "Credit schedule"
    text: str  # "2. Credit schedule\n...": heading line, body and sub-sections

    @property
    def citation(self) -> str:
        return f"{self.policy_id} §{self.section}"


def read_docx_paragraphs(path: str | Path) -> list[tuple[str, str]]:
    """(style name, text) of every body paragraph of a .docx, in document order.

    Any failure to open the file becomes a PolicyFormatError naming it, because the raw errors
    (KeyError, BadZipFile, "Package not found") do not say which of the policies was bad.
    """
    # Imported here so that the pure parsing functions do not need python-docx loaded.
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from lxml.etree import XMLSyntaxError

    path = Path(path)
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, XMLSyntaxError, OSError) as error:
        raise PolicyFormatError(f"{path.name}: not a readable .docx file ({error})") from error
    return [
        (paragraph.style.name if paragraph.style is not None and paragraph.style.name else "", paragraph.text)
        for paragraph in document.paragraphs
    ]


def _clean(text: str) -> str:
    """One line of text: Word's tabs, soft line breaks and doubled spaces become single spaces."""
    return _WHITESPACE.sub(" ", text).strip()


def _is_heading_style(style: str) -> bool:
    # Covers "Heading 1", "Heading 1 Char" (a character style Word sometimes leaves on a
    # paragraph) and custom styles such as "Heading Policy".
    return style.strip().lower().startswith("heading")


def _section_heading(style: str, text: str) -> tuple[str, str] | None:
    """(number, title) when the paragraph opens a numbered section, else None."""
    if not _is_heading_style(style):
        return None
    match = _SECTION_HEADING.match(text)
    if match is None:
        return None
    return str(int(match.group(1))), match.group(2).strip()


def _render_line(style: str, text: str) -> str:
    if style.strip().lower().startswith("list") and not text.startswith("- "):
        return f"- {text}"
    return text


def _metadata(preamble: Sequence[tuple[str, str]], source_name: str) -> tuple[str, str, str]:
    """(policy_id, title, category) from the paragraphs before the first section."""
    title = next((text for style, text in preamble if style.strip().lower() == "title"), None)
    id_match = next((match for _, text in preamble if (match := _POLICY_ID.search(text))), None)
    category_match = _CATEGORY.search(id_match.string) if id_match is not None else None
    if id_match is None or category_match is None or title is None:
        missing = []
        if id_match is None:
            missing.append("no policy id (a 'Policy ID: POL-NNN | Category: ...' line before the first section)")
        elif category_match is None:
            missing.append("no category (a 'Category: ...' entry on the Policy ID line)")
        if title is None:
            missing.append("no title (a paragraph in the Title style)")
        raise PolicyFormatError(f"{source_name}: {'; '.join(missing)}")
    return id_match.group(1).upper(), title, category_match.group(1)


def parse_policy(paragraphs: Iterable[tuple[str, str]], source_name: str) -> list[PolicyChunk]:
    """Cut one policy document, given as (style, text) paragraphs, into section chunks.

    The Title paragraph and the "Policy ID: ... | Category: ..." line give the metadata; each
    numbered heading opens a section that runs until the next one. Text before the first
    section other than the metadata (a subtitle, a table of contents) belongs to no citation
    and is dropped.
    """
    preamble: list[tuple[str, str]] = []
    sections: list[tuple[str, str, list[str]]] = []
    for style, raw_text in paragraphs:
        style, text = style or "", _clean(raw_text or "")
        if not text:
            continue
        heading = _section_heading(style, text)
        if heading is not None:
            number, section_title = heading
            if any(existing == number for existing, _, _ in sections):
                raise PolicyFormatError(f"{source_name}: section {number} appears more than once")
            sections.append((number, section_title, [text]))
        elif sections:
            sections[-1][2].append(_render_line(style, text))
        else:
            preamble.append((style, text))

    policy_id, title, category = _metadata(preamble, source_name)
    if not sections:
        raise PolicyFormatError(f"{source_name}: no numbered section (a heading such as '1. Scope' in a Heading style)")
    return [
        PolicyChunk(
            chunk_id=f"{policy_id}#{number}",
            policy_id=policy_id,
            title=title,
            category=category,
            section=number,
            section_title=section_title,
            text="\n".join(lines),
        )
        for number, section_title, lines in sections
    ]


def load_policy_chunks(directory: str | Path) -> list[PolicyChunk]:
    """Every section of every *.docx in `directory`, files in name order.

    A missing directory is an error rather than an empty list: an empty policy index would
    silently turn every proposal into one without citations.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"policy directory {directory} does not exist")
    chunks: list[PolicyChunk] = []
    sources: dict[str, str] = {}
    # "~$name.docx" is the lock file Word leaves beside a document it has open.
    for path in sorted(p for p in directory.glob("*.docx") if not p.name.startswith("~$")):
        document_chunks = parse_policy(read_docx_paragraphs(path), path.name)
        policy_id = document_chunks[0].policy_id
        if policy_id in sources:
            # Two files with one id would make "POL-003 §2" ambiguous.
            raise PolicyFormatError(f"{path.name}: policy id {policy_id} is also used by {sources[policy_id]}")
        sources[policy_id] = path.name
        chunks.extend(document_chunks)
    return chunks
