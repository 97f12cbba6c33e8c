"""Reading survey CSV files: decoding, header aliases, rows with their line numbers, and the
validation errors every survey input reports (each problem with its 1-based line).

Pure (no Streamlit, no database). The parsers built on it live in :mod:`labeling.survey`
(ratings, people) and :mod:`labeling.quotas` (type choices, shares).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

#: Optional rater columns used for breakdowns.
BREAKDOWN_COLUMNS: tuple[str, ...] = ("age_group", "gender")
_HEADER_ALIASES = {
    "rater": "rater_id",
    "respondent": "rater_id",
    "respondent_id": "rater_id",
    "person": "person_id",
    "person_key": "person_id",
    "rating": "score",
    "age": "age_group",
    "agegroup": "age_group",
    "sex": "gender",
    "pseudonym": "name",
    "type_name": "type",
    "choice": "type",
}


# --------------------------------------------------------------------------------------------
# Validation errors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One validation problem. ``line`` is the 1-based line in the file (header = line 1), or
    ``None`` when the problem is not tied to a line (e.g. shares typed in by hand)."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


class SurveyValidationError(ValueError):
    """An input was rejected; ``problems`` lists every problem found, not only the first."""

    def __init__(self, problems: Iterable[Problem], source: str = ""):
        self.problems: list[Problem] = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.source}: " if self.source else ""
        n = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        return f"{head}{n} problem{'s' if n != 1 else ''}\n{lines}"

# --------------------------------------------------------------------------------------------
# Reading CSV files
# --------------------------------------------------------------------------------------------


def decode_text(data: bytes | str) -> str:
    """Decode a survey file: UTF-8 (with or without BOM), else CP949 (a superset of EUC-KR).
    Shift-JIS and ISO-2022-JP (Japanese) text is refused by name, and text that CP949 decodes into
    mostly non-Hangul letters (EUC-JP kana, for one) as not Korean. (Japanese or Chinese ideographs
    alone in EUC-JP, GB18030 or Big5 read as rare Hangul syllables and still pass.)"""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        line = data[: utf8_error.start].count(b"\n") + 1
        if _looks_like_shift_jis(data):
            raise SurveyValidationError(
                [Problem(None, "the file looks like Shift-JIS (Japanese) text, which this app does not read; "
                               "save it as UTF-8 and upload it again")]
            ) from None
        try:
            text = data.decode("cp949")
        except UnicodeDecodeError:
            raise SurveyValidationError(
                [Problem(line, "the file is neither UTF-8 nor CP949/EUC-KR text "
                               f"(byte 0x{data[utf8_error.start]:02x})")]
            ) from None
        if not _mostly_hangul(text):
            raise SurveyValidationError(
                [Problem(None, "the file is not UTF-8, and read as CP949/EUC-KR it is not Korean text (it may be "
                               "Japanese or Chinese, e.g. EUC-JP, which this app does not read); "
                               "save it as UTF-8 and upload it again")]
            ) from None
        return text
    if "\x1b$" in text:  # the escape that switches ISO-2022-JP to Japanese characters
        raise SurveyValidationError(
            [Problem(None, "the file is ISO-2022-JP (Japanese) text, which this app does not read; "
                           "save it as UTF-8 and upload it again")]
        )
    return text


def _mostly_hangul(text: str) -> bool:
    """At least half the non-ASCII letters are Hangul syllables: Korean text. (Japanese and Chinese
    files read as CP949 come out as jamo, symbols and hanja.)"""
    wide = [c for c in text if ord(c) > 0x7F and c.isalpha()]
    return not wide or sum("\uac00" <= c <= "\ud7a3" for c in wide) >= 0.5 * len(wide)


def _looks_like_shift_jis(data: bytes) -> bool:
    """Not EUC-KR, but Shift-JIS with full-width kana among its non-ASCII characters (Korean
    bytes read as Shift-JIS give half-width katakana, not these)."""
    try:
        data.decode("euc_kr")
        return False
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp932")
    except UnicodeDecodeError:
        return False
    wide = [c for c in text if ord(c) > 0x7F]
    kana = sum("\u3040" <= c <= "\u30ff" for c in wide)
    return kana > 0 and kana >= 0.1 * len(wide)


def read_bytes(source: bytes | str | Path | io.IOBase) -> bytes | str:
    if isinstance(source, Path):
        return source.read_bytes()
    if isinstance(source, (bytes, str)):
        return source
    return source.read()


def _normalize_header(name: str) -> str:
    key = re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").lower())
    return _HEADER_ALIASES.get(key, key)


@dataclass
class Table:
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # (line, values)


def read_table(data: bytes | str, required: Sequence[str]) -> tuple[Table | None, list[Problem]]:
    """Parse CSV text into rows keyed by normalized column names, with their line numbers.

    Returns ``(None, problems)`` when the file cannot be read at all (empty, missing columns).
    """
    text = decode_text(data)
    if not text.strip():
        return None, [Problem(1, "the file is empty")]
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[Problem] = []
    header: list[str] | None = None
    table: Table | None = None
    last_line = 0
    try:
        for raw in reader:
            start = last_line + 1
            last_line = reader.line_num
            if not raw or all(not cell.strip() for cell in raw):
                continue
            if header is None:
                header = [_normalize_header(c) for c in raw]
                missing = [c for c in required if c not in header]
                if missing:
                    return None, [Problem(start, f"missing column{'s' if len(missing) > 1 else ''}: "
                                                 f"{', '.join(missing)} (found: {', '.join(raw)})")]
                dupes = sorted({c for c in header if c and header.count(c) > 1})
                if dupes:
                    return None, [Problem(start, f"duplicate column: {', '.join(dupes)}")]
                table = Table(header)
                continue
            if len(raw) > len(header):
                extra = raw[len(header):]
                if any(cell.strip() for cell in extra):
                    problems.append(Problem(start, f"{len(raw)} fields, the header has {len(header)}"))
                    continue
            values = {col: (raw[i].strip() if i < len(raw) else "") for i, col in enumerate(header)}
            table.rows.append((start, values))
    except csv.Error as exc:
        problems.append(Problem(reader.line_num, f"unreadable CSV: {exc}"))
    if header is None:
        return None, [Problem(1, "the file is empty")]
    if not table.rows and not problems:
        return None, [Problem(1, "the file has a header but no data rows")]
    return table, problems
