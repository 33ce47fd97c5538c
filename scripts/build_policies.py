#!/usr/bin/env python3
"""Build the policy .docx files under policies/ from their markdown sources in policies/src/.

The .docx files are what the platform reads (and what a compliance reader opens in Word), but a
.docx is a zip of XML that no reviewer can diff. So the source of truth is a small markdown
file per policy, and this script renders it. The output is byte-for-byte deterministic, so an
unchanged source gives an unchanged file and git shows no noise; `--check` lets CI catch a
source edit whose rebuild was forgotten.

Source format (nothing else is accepted, so the source stays a clean diff):

    ---
    policy_id: POL-003
    title: Service Outage Compensation
    category: service_outage
    version: 1.0
    effective: 2026-01-01
    owner: Payments Operations
    ---
    ## 2. Credit schedule        -> Heading 1, number kept in the text
    ### 2.1 Sub-section          -> Heading 2
    - bullet item                -> List Bullet
    plain paragraph lines        -> Normal (consecutive lines are joined)

Usage: python scripts/build_policies.py [--check] [--src-dir DIR] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import docx

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT_DIR = REPO_ROOT / "policies"
DEFAULT_SRC_DIR = DEFAULT_OUT_DIR / "src"

COMPANY = "Brightwave Software, Inc."
REQUIRED_KEYS = ("policy_id", "title", "category", "version", "effective", "owner")
# The earliest timestamp a zip entry can hold; any fixed value works, this one is conventional.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

_FRONT_MATTER_LINE = re.compile(r"^([a-z_]+):\s*(.*?)\s*$")
_SECTION = re.compile(r"^## (\d+)\. (\S.*)$")
_SUBSECTION = re.compile(r"^### (\d+)\.(\d+) (\S.*)$")
_POLICY_ID = re.compile(r"^POL-\d{3}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Markup outside the subset: rejected rather than copied into the .docx as literal characters.
_UNSUPPORTED = (
    (re.compile(r"^#(?!#)|^#{4,}"), "only '## N. Title' and '### N.M Title' headings are allowed"),
    (re.compile(r"^\s*\|"), "tables are not supported"),
    (re.compile(r"\*\*|__"), "bold is not supported"),
    (re.compile(r"^\s*(\*|\+|\d+[.)])\s"), "only '- ' bullets are supported"),
    (re.compile(r"^\s+-\s"), "nested bullets are not supported"),
)


class SourceError(ValueError):
    """A policy source that does not follow the format; the message names the file and line."""


@dataclass(frozen=True)
class Block:
    """One output paragraph: its python-docx style name and text."""

    style: str
    text: str


@dataclass
class PolicySource:
    path: Path
    meta: dict[str, str]
    blocks: list[Block] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return self.path.stem


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _parse_front_matter(lines: list[str], path: Path) -> tuple[dict[str, str], int]:
    """Return the metadata and the index of the first body line."""
    if not lines or lines[0].strip() != "---":
        raise SourceError(f"{path}: must start with a '---' front matter block")
    meta: dict[str, str] = {}
    for index in range(1, len(lines)):
        line = lines[index].strip()
        if line == "---":
            break
        if not line:
            continue
        match = _FRONT_MATTER_LINE.match(line)
        if match is None:
            raise SourceError(f"{path}:{index + 1}: front matter line is not 'key: value': {line!r}")
        meta[match.group(1)] = _strip_quotes(match.group(2))
    else:
        raise SourceError(f"{path}: front matter block is not closed with '---'")
    missing = [key for key in REQUIRED_KEYS if not meta.get(key)]
    if missing:
        raise SourceError(f"{path}: front matter lacks {', '.join(missing)}")
    unknown = sorted(set(meta) - set(REQUIRED_KEYS))
    if unknown:
        raise SourceError(f"{path}: unknown front matter keys {', '.join(unknown)}")
    if not _POLICY_ID.match(meta["policy_id"]):
        raise SourceError(f"{path}: policy_id {meta['policy_id']!r} is not like POL-003")
    if not _DATE.match(meta["effective"]):
        raise SourceError(f"{path}: effective {meta['effective']!r} is not a YYYY-MM-DD date")
    if not path.stem.startswith(meta["policy_id"] + "-"):
        # The file name is how people find a policy; it must not drift from the id it cites.
        raise SourceError(f"{path}: file name does not start with its policy_id {meta['policy_id']}")
    return meta, index + 1


def _parse_body(lines: list[str], start: int, path: Path) -> list[Block]:
    blocks: list[Block] = []
    paragraph: list[str] = []
    section: str | None = None
    seen_sections: set[str] = set()

    def flush() -> None:
        if paragraph:
            blocks.append(Block("Normal", " ".join(paragraph)))
            paragraph.clear()

    for index in range(start, len(lines)):
        raw = lines[index].rstrip()
        where = f"{path}:{index + 1}"
        if not raw.strip():
            flush()
            continue
        if section_match := _SECTION.match(raw):
            flush()
            section = section_match.group(1)
            if section in seen_sections:
                raise SourceError(f"{where}: section {section} appears twice")
            seen_sections.add(section)
            blocks.append(Block("Heading 1", f"{section}. {section_match.group(2)}"))
            continue
        if sub_match := _SUBSECTION.match(raw):
            flush()
            number = f"{sub_match.group(1)}.{sub_match.group(2)}"
            if sub_match.group(1) != section:
                # A citation like "POL-003 §2" must cover 2.1, so 2.1 may only sit inside 2.
                raise SourceError(f"{where}: sub-section {number} is outside section {section}")
            blocks.append(Block("Heading 2", f"{number} {sub_match.group(3)}"))
            continue
        for pattern, reason in _UNSUPPORTED:
            if pattern.search(raw):
                raise SourceError(f"{where}: {reason}: {raw.strip()!r}")
        if raw.startswith("#"):
            raise SourceError(f"{where}: malformed heading {raw!r}; use '## 2. Title' or '### 2.1 Title'")
        if section is None:
            raise SourceError(f"{where}: text before the first '## 1. ...' section")
        if raw.startswith("- "):
            flush()
            blocks.append(Block("List Bullet", raw[2:].strip()))
        else:
            paragraph.append(raw.strip())
    flush()
    if not seen_sections:
        raise SourceError(f"{path}: no '## N. Title' section")
    return blocks


def parse_source(path: Path) -> PolicySource:
    """Parse one markdown policy source, rejecting anything outside the documented subset."""
    lines = path.read_text(encoding="utf-8").splitlines()
    meta, body_start = _parse_front_matter(lines, path)
    return PolicySource(path=path, meta=meta, blocks=_parse_body(lines, body_start, path))


def metadata_line(meta: dict[str, str]) -> str:
    """The line `dispute_platform.domain.policies.parse_policy` reads the id and category from."""
    return (
        f"Policy ID: {meta['policy_id']} | Category: {meta['category']} | Version {meta['version']}"
        f" | Effective {meta['effective']} | Owner: {meta['owner']}"
    )


def _set_core_properties(document: docx.document.Document, source: PolicySource) -> None:
    meta = source.meta
    # Fixed dates (the effective date) instead of "now", so a rebuild changes no byte.
    effective = dt.datetime.strptime(meta["effective"], "%Y-%m-%d").replace(tzinfo=dt.UTC)
    props = document.core_properties
    props.title = meta["title"]
    props.subject = meta["category"]
    props.identifier = meta["policy_id"]
    props.keywords = f"{meta['policy_id']}, {meta['category']}, billing policy"
    props.category = meta["category"]
    props.version = meta["version"]
    props.author = f"{COMPANY} - {meta['owner']}"
    props.last_modified_by = meta["owner"]
    props.comments = f"Generated from policies/src/{source.stem}.md; edit the source, not this file."
    props.language = "en-US"
    props.revision = 1
    props.created = effective
    props.modified = effective


def _normalise_zip(raw: bytes) -> bytes:
    """Rewrite the zip python-docx wrote with fixed entry metadata.

    python-docx stamps every entry with the current time (zipfile.writestr with a bare name),
    which alone makes two builds differ; the entry order and contents are already stable.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3  # the host OS is recorded too; pin it
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, src.read(info.filename), compresslevel=9)
    return out.getvalue()


def render(source: PolicySource) -> bytes:
    """The .docx bytes for one policy source."""
    document = docx.Document()
    document.add_paragraph(source.meta["title"], style="Title")
    document.add_paragraph(metadata_line(source.meta), style="Normal")
    for block in source.blocks:
        document.add_paragraph(block.text, style=block.style)
    _set_core_properties(document, source)
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalise_zip(buffer.getvalue())


def _zip_contents(data: bytes) -> list[tuple[str, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [(info.filename, archive.read(info.filename)) for info in archive.infolist()]
    except (zipfile.BadZipFile, OSError, KeyError):
        return None


def is_up_to_date(expected: bytes, target: Path) -> bool:
    """Whether `target` holds the document `expected` describes.

    Compared by the unzipped entries rather than the raw bytes: another zlib build may
    compress the same XML to different bytes, and that must not fail CI on another machine.
    """
    if not target.is_file():
        return False
    actual = target.read_bytes()
    return actual == expected or _zip_contents(actual) == _zip_contents(expected)


def _sources(src_dir: Path) -> list[Path]:
    return sorted(src_dir.glob("*.md"))


def build(src_dir: Path, out_dir: Path, *, check: bool) -> int:
    """Render every source; in check mode write nothing and report what is stale. Exit code."""
    sources = _sources(src_dir)
    if not sources:
        print(f"no policy sources in {src_dir}", file=sys.stderr)
        return 1
    problems: list[str] = []
    seen_ids: dict[str, Path] = {}
    for path in sources:
        try:
            source = parse_source(path)
        except SourceError as error:
            problems.append(str(error))
            continue
        policy_id = source.meta["policy_id"]
        if policy_id in seen_ids:
            problems.append(f"{path}: policy_id {policy_id} is also used by {seen_ids[policy_id]}")
            continue
        seen_ids[policy_id] = path
        target = out_dir / f"{source.stem}.docx"
        expected = render(source)
        if is_up_to_date(expected, target):
            continue
        if check:
            problems.append(f"{target} is out of date with {path}; run python scripts/build_policies.py")
        else:
            target.write_bytes(expected)
            print(f"wrote {target}")
    expected_names = {f"{path.stem}.docx" for path in sources}
    for orphan in sorted(p for p in out_dir.glob("*.docx") if p.name not in expected_names):
        # The platform loads every .docx in the folder, so a document whose source is gone would
        # still be cited. Deleting it is left to a person; the check fails until then.
        message = f"{orphan} has no source in {src_dir}; delete it or add its source"
        if check:
            problems.append(message)
        else:
            print(f"warning: {message}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and check:
        print(f"{len(sources)} policy documents are up to date")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if any .docx is stale")
    parser.add_argument("--src-dir", type=Path, default=DEFAULT_SRC_DIR)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    if not args.check:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    return build(args.src_dir, args.out_dir, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
