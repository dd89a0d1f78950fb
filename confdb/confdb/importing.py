"""CSV import of users and phonebook entries (`pbx-admin import users|phonebook FILE.csv`).

Files are UTF-8 (a BOM is fine) with a header row; the delimiter is ',' unless the header has ';' or a
tab and no ','. Refused as a whole, before anything is written, naming the line: a file that is not
UTF-8, a quote that does not close on its line (no cell holds a line break), unknown columns. An empty
cell means "not given". Row N is line N of the file (the header is line 1); a row with more (not empty)
or fewer cells than the header is refused. The credentials file never holds a cell a spreadsheet would
run as a formula (spreadsheet_safe). Columns named row, field and reason are ignored, so
a rejects file, once corrected, can be imported again.

users: firstname (required), lastname, exten, context (default internal), language, callerid_name,
  callerid_num, ring_seconds, simultaneous_calls, dnd, enabled, fwd_unconditional,
  fwd_unconditional_enabled, fwd_busy, fwd_busy_enabled, fwd_noanswer, fwd_noanswer_enabled,
  line (yes/no, default yes: a new SIP line when the user has an extension), shared_line (join this
  existing line instead), voicemail (yes/no, default no; the mailbox is the extension), voicemail_pin
  (default: generated), email, cti_login, cti_password.
phonebook: display_name, firstname, lastname, company, email, office, mobile, home, fax, other (several
  numbers of one kind in one cell are separated by ';').

Each row is all or nothing: a user's line, extension and voicemail box land with it or not at all. The
rules are the writer's (users.check_user / find_conflicts, phonebook.check_entry); the writing is the
bulk path of confdb.writer.bulk_users. A row repeating an extension, mailbox or CTI login of an earlier row
is refused, naming that row.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import psycopg

from confdb import numbers, validation
from confdb.progress import Progress
from confdb.validation import ValidationError
from confdb.writer import bulk, bulk_users, phonebook, users
from confdb.writer.errors import WriteError

IGNORED_COLUMNS = ("row", "field", "reason")
USER_COLUMNS = (
    "firstname",
    "lastname",
    "exten",
    "context",
    *(name for name in users.USER_FIELDS if name not in ("firstname", "lastname")),
    "line",
    "shared_line",
    "voicemail",
    "voicemail_pin",
    "email",
    "cti_login",
    "cti_password",
)
PHONEBOOK_COLUMNS = ("display_name", "firstname", "lastname", "company", "email", *phonebook.NUMBER_KINDS)
CREDENTIAL_COLUMNS = (
    "row",
    "firstname",
    "lastname",
    "exten",
    "line",
    "sip_username",
    "sip_secret",
    "voicemail_pin",
)

# Where a writer field name does not name the CSV column it came from.
_FIELD_COLUMNS = {
    "voicemail.mailbox": "exten",
    "voicemail.fullname": "callerid_name",
    "voicemail.email": "email",
    "voicemail.pin": "voicemail_pin",
    "voicemail.language": "language",
}
_EXTRA = "\x00extra"  # a row's cells beyond the header, joined by ';'
_SHORT = "\x00short"  # set in a row with fewer cells than the header: why it is refused
# What a spreadsheet reads as a formula at the start of a cell (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (not CSV, no header, unknown column...)."""


@dataclass(frozen=True)
class Reject:
    row: int
    column: str
    reason: str
    values: Mapping[str, str]


@dataclass
class Report:
    rows: int = 0
    created: int = 0
    rejects: list[Reject] = field(default_factory=list)
    credentials: list[dict[str, str]] = field(default_factory=list)  # users: generated secrets and PINs


def column_of(field_name: str | None) -> str:
    if not field_name:
        return ""
    return _FIELD_COLUMNS.get(field_name, field_name.partition(".")[2] or field_name)


@dataclass(frozen=True)
class CsvFile:
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (row number, cells by column)


def _text(source: Path | TextIO) -> str:
    """The file's text. Not UTF-8: refused as a whole, naming the line of the first bad byte."""
    if not isinstance(source, Path):
        return source.read().removeprefix("\ufeff")
    try:
        data = source.read_bytes().removeprefix(codecs.BOM_UTF8)
    except OSError as exc:
        raise ImportFileError(f"cannot read {source}: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ImportFileError(
            f"{source}, line {line}: not UTF-8 text (byte {data[exc.start]:#04x} at byte {column} of the "
            "line): save the file as UTF-8, or convert it, e.g. iconv -f WINDOWS-1252 -t UTF-8; "
            "nothing was imported"
        ) from None


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of each record. A record may not span lines: a cell holds no line break, so a
    quote that does not close on its own line is an unclosed quote, and the file is refused there."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for cells in reader:
            if reader.line_num != start:
                raise ImportFileError(
                    f"line {start}: a quote opened on this line closes only on line {reader.line_num} "
                    "(a cell cannot hold a line break): close it on its line; nothing was imported"
                )
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise ImportFileError(
                f"line {start}: a quote opened on this line is never closed; nothing was imported"
            ) from None
        raise ImportFileError(f"line {reader.line_num}: {exc}; nothing was imported") from None


def read_csv(source: Path | TextIO, columns: Sequence[str], required: Sequence[str] = ()) -> CsvFile:
    """Parse and check the header (columns with an empty name are ignored); each row is refused later if it
    has more cells than the header (unless they are empty) or fewer."""
    text = _text(source)
    first = text.split("\n", 1)[0]
    delimiter = next((d for d in (";", "\t") if d in first and "," not in first), ",")
    records = _records(text, delimiter)
    header = [h.strip() for h in next(records, (1, []))[1]]
    if not header or not any(header):
        raise ImportFileError("the file is empty: a header row naming the columns is required")
    unknown = [h for h in header if h and h not in columns and h not in IGNORED_COLUMNS]
    if unknown:
        raise ImportFileError(
            f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known columns: {', '.join(columns)}"
        )
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportFileError(f"missing column {', '.join(map(repr, missing))}")
    if len(set(filter(None, header))) != len(list(filter(None, header))):
        raise ImportFileError("a column appears twice in the header")
    named = max(i for i, h in enumerate(header) if h) + 1  # trailing unnamed columns may be left out
    rows = []
    for line, cells in records:
        if not cells:
            continue  # a blank line
        row = dict(zip(header, cells, strict=False))
        if len(cells) > len(header):
            row[_EXTRA] = ";".join(cells[len(header) :])
        elif len(cells) < named:
            row[_SHORT] = f"has {len(cells)} cells, the header has {named} columns"
        rows.append((line, row))
    return CsvFile(header, rows)


def _cell(row: Mapping[str, str], column: str) -> str | None:
    value = row.get(column)
    return value if value is not None and value.strip() else None


def _extra_cells(row: Mapping[str, str]) -> None:
    """Refuse a row whose cells do not line up with the header: more (not empty) or fewer."""
    if row.get(_EXTRA, "").strip(";"):
        raise ValidationError("", "has more cells than the header has columns")
    if _SHORT in row:
        raise ValidationError("", row[_SHORT] + ": a cell or a delimiter is missing")


def user_spec(row: Mapping[str, str]) -> users.UserSpec:
    """The UserSpec a CSV row asks for; the writer checks the values."""
    _extra_cells(row)
    fields = {
        name: value
        for name in users.USER_FIELDS
        if name not in ("firstname", "lastname") and (value := _cell(row, name)) is not None
    }
    return users.UserSpec(
        firstname=row.get("firstname") or "",
        lastname=row.get("lastname") or "",
        fields=fields,
        exten=_cell(row, "exten"),
        context=(_cell(row, "context") or "internal").strip(),
        new_line=validation.boolean("user.line", _cell(row, "line") or "yes"),
        shared_line=(_cell(row, "shared_line") or "").strip() or None,
        voicemail=validation.boolean("user.voicemail", _cell(row, "voicemail") or "no"),
        voicemail_pin=_cell(row, "voicemail_pin"),
        email=_cell(row, "email"),
        cti_login=_cell(row, "cti_login"),
        cti_password=_cell(row, "cti_password"),
    )


def entry_spec(row: Mapping[str, str]) -> phonebook.EntrySpec:
    _extra_cells(row)
    found = [
        phonebook.PhoneNumber(n.strip(), kind)
        for kind in phonebook.NUMBER_KINDS
        for n in (row.get(kind) or "").split(";")
        if n.strip()
    ]
    return phonebook.EntrySpec(
        display_name=row.get("display_name") or "",
        firstname=row.get("firstname") or "",
        lastname=row.get("lastname") or "",
        company=row.get("company") or "",
        email=_cell(row, "email"),
        numbers=found,
    )


def _parse(data: CsvFile, make: Callable[[Mapping[str, str]], Any], report: Report) -> list[tuple[int, Any]]:
    parsed = []
    for number, row in data.rows:
        try:
            parsed.append((number, make(row)))
        except ValidationError as exc:
            report.rejects.append(Reject(number, column_of(exc.field), exc.message, row))
    return parsed


def import_users(
    conn: psycopg.Connection[Any],
    data: CsvFile,
    *,
    progress: Progress | None = None,
    hasher: bulk_users.Hasher = bulk_users.hash_passwords,
) -> Report:
    """Create the users of `data` in the caller's transaction; refused rows are in the report."""
    report = Report(rows=len(data.rows))
    parsed = _parse(data, user_spec, report)
    by_number = dict(data.rows)
    outcomes = bulk_users.create_users(conn, [spec for _, spec in parsed], progress=progress, hasher=hasher)
    for (number, spec), outcome in zip(parsed, outcomes, strict=True):
        if outcome.created is None:
            reason = outcome.error or "refused"
            if outcome.duplicate_of is not None:
                reason += f" (by row {parsed[outcome.duplicate_of][0]} of this file)"
            report.rejects.append(Reject(number, column_of(outcome.field), reason, by_number[number]))
            continue
        report.created += 1
        created = outcome.created
        if created.line or created.voicemail_pin:
            report.credentials.append(
                {
                    "row": str(number),
                    "firstname": spec.firstname.strip(),
                    "lastname": spec.lastname.strip(),
                    "exten": created.exten or "",
                    "line": created.line.name if created.line else "",
                    "sip_username": created.line.auth_username if created.line else "",
                    "sip_secret": created.line.secret if created.line else "",
                    "voicemail_pin": created.voicemail_pin or "",
                }
            )
    report.rejects.sort(key=lambda r: r.row)
    return report


def import_phonebook(
    conn: psycopg.Connection[Any],
    data: CsvFile,
    *,
    country: str = numbers.DEFAULT_COUNTRY,
    progress: Progress | None = None,
) -> Report:
    """Create the phonebook entries of `data` in the caller's transaction."""
    progress = progress or Progress(mode="off")
    report = Report(rows=len(data.rows))
    progress.phase("checking", len(data.rows))
    by_number = dict(data.rows)
    checked: list[tuple[int, phonebook.EntrySpec, phonebook.CheckedEntry]] = []
    for number, spec in _parse(data, entry_spec, report):
        try:
            checked.append((number, spec, phonebook.check_entry(spec, country=country)))
        except ValidationError as exc:
            report.rejects.append(Reject(number, column_of(exc.field), exc.message, by_number[number]))
        progress.advance()
    done: set[int] = set()

    def write_chunk(chunk: Sequence[tuple[int, phonebook.EntrySpec, phonebook.CheckedEntry]]) -> None:
        phonebook.create_entries(conn, [c for _, _, c in chunk])
        done.update(n for n, _, _ in chunk)

    def write_one(item: tuple[int, phonebook.EntrySpec, phonebook.CheckedEntry]) -> None:
        number, spec, _ = item
        try:
            with conn.transaction():
                phonebook.create_entry(conn, spec, country=country)
        except (ValidationError, WriteError, psycopg.Error) as exc:
            if isinstance(exc, psycopg.Error) and (conn.closed or conn.broken):
                raise
            report.rejects.append(
                Reject(number, column_of(getattr(exc, "field", "")), str(exc), by_number[number])
            )
        else:
            done.add(number)

    progress.phase("writing", len(checked))
    bulk.write_in_chunks(conn, checked, write_chunk, write_one, chunk_size=2000, on_written=progress.advance)
    progress.done()
    report.created = len(done)
    report.rejects.sort(key=lambda r: r.row)
    return report


def open_private(path: Path, *, exclusive: bool) -> TextIO:
    """A text file only its owner can read (0600), created now; `exclusive`: refuse to replace one."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ImportFileError(
            f"{path} already exists; it may hold credentials: choose another name"
        ) from None
    except OSError as exc:
        raise ImportFileError(f"cannot create {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def spreadsheet_safe(value: str) -> str:
    """`value` as a spreadsheet shows it, never as a formula: one starting like a formula gets a leading
    single quote, which spreadsheets hide (OWASP, CSV injection). An extension +3312 shows as +3312."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def write_credentials(handle: TextIO, report: Report) -> None:
    """The credentials file: every cell quoted, and none a formula when opened in a spreadsheet."""
    writer = csv.DictWriter(handle, CREDENTIAL_COLUMNS, quoting=csv.QUOTE_ALL)
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in report.credentials)
    handle.flush()
    os.fsync(handle.fileno())


def write_rejects(handle: TextIO, header: Sequence[str], report: Report) -> None:
    columns = [h for h in header if h not in IGNORED_COLUMNS] + list(IGNORED_COLUMNS)
    writer = csv.DictWriter(handle, columns, extrasaction="ignore")
    writer.writeheader()
    for reject in report.rejects:
        writer.writerow({**reject.values, "row": reject.row, "field": reject.column, "reason": reject.reason})


def describe(reject: Reject) -> str:
    where = f"row {reject.row}" + (f", column {reject.column}" if reject.column else "")
    return f"{where}: {reject.reason}"
