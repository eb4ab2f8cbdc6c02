"""The extxyz grammar, as far as the checks before a parse need it: frame headers (atom counts) and the comment line's
``Properties`` as ASE reads them, so that no frame makes a reader allocate or wait without bound.
"""

from __future__ import annotations

import re
from typing import Any

from goectp.text_values import count_value, short

#: the most per-atom columns an extxyz ``Properties=`` may declare (a reader allocates them for every atom)
MAX_EXTXYZ_COLUMNS = 1_000
#: the longest extxyz comment (second) line read: ASE parses it character by character (about 1 s per MB)
MAX_EXTXYZ_COMMENT_CHARS = 100_000
# A comment line of plain pairs: ``key`` or ``key=value``, the value unquoted or within one pair of quotes or
# brackets, none empty, no backslash. ASE's ``key_val_str_to_dict`` splits such a line exactly as these regexes do
# (in C, not character by character); any other line is parsed by ASE's own function.
_XYZ_WORD = r"[^\s=\"'{}\[\]\\]+"
_XYZ_PAIR = rf"({_XYZ_WORD})(?:=({_XYZ_WORD}|\"[^\"\\]+\"|'[^'\\]+'|\{{[^}}\\]+\}}|\[[^\]\\]+\]))?"
_XYZ_PLAIN = re.compile(rf"(?:{_XYZ_PAIR}(?:\s+|\Z))*")
_XYZ_PAIRS = re.compile(_XYZ_PAIR)
_XYZ_SPLITS = re.compile(r"[\s,]")  # where ASE splits a value into the numbers or booleans it tries
#: what ASE drops from a key (escapes, quotes, brackets): a key it reads as ``Properties`` is spelt so without them
_XYZ_KEY_NOISE = str.maketrans("", "", "\\\"'{}[]")


def _ase_key_values(comment: str) -> dict[str, Any]:
    """ASE's own reading of an extxyz comment line (imported only for lines the regexes above do not split)."""
    from ase.io.extxyz import key_val_str_to_dict

    return key_val_str_to_dict(comment)


def extxyz_properties(comment: str) -> Any:
    """The ``Properties`` value ASE reads from an extxyz comment line (``None`` without one or when ASE fails on
    the line): the last ``Properties`` key, after ASE's quoting, escapes and value conversion."""
    comment = comment.strip()
    if "Properties" not in comment and "Properties" not in comment.translate(_XYZ_KEY_NOISE):
        return None
    try:
        if not _XYZ_PLAIN.fullmatch(comment):
            return _ase_key_values(comment).get("Properties")
        last = None
        for pair in _XYZ_PAIRS.finditer(comment):
            if pair.group(1) == "Properties":
                last = pair
        if last is None or last.group(2) is None:
            return None  # a key without a value is True to ASE
        value = last.group(2)[1:-1] if last.group(2)[0] in "\"'{[" else last.group(2)
        if ":" in value and not _XYZ_SPLITS.search(value):
            return value  # no number, boolean or JSON: ASE keeps the string as it is
        return _ase_key_values(last.group(0)).get("Properties")  # ASE's conversion of that one pair
    except Exception:  # ASE raises as much on the same line: it reads no columns
        return None


def _extxyz_comment_problem(comment: str) -> str:
    """Why an extxyz frame's second line would make ASE allocate without bound ("" when it would not): longer than
    :data:`MAX_EXTXYZ_COMMENT_CHARS`, or a ``Properties`` (the one ASE uses: :func:`extxyz_properties`) that is
    not ``name:type:count`` triples or declares more than :data:`MAX_EXTXYZ_COLUMNS` columns."""
    if len(comment) > MAX_EXTXYZ_COMMENT_CHARS:
        return f"a comment line of {len(comment):,} characters, more than the limit of {MAX_EXTXYZ_COMMENT_CHARS:,}"
    properties = extxyz_properties(comment)
    if not isinstance(properties, str):
        return ""  # the default columns, or a value ASE cannot split into any
    fields = properties.split(":")
    if len(fields) % 3:
        return f"Properties={short(properties, 40)!r} is not name:type:count triples"
    counts = [count_value(c) for c in fields[2::3]]
    if any(c is None or c < 1 for c in counts):
        return f"Properties={short(properties, 40)!r} has a column count that is not a positive integer"
    if sum(counts) > MAX_EXTXYZ_COLUMNS:
        return f"Properties declares {sum(counts):,} columns per atom, more than {MAX_EXTXYZ_COLUMNS:,}"
    return ""


def _extxyz_frame_lines(lines: list[str], max_atoms: int) -> tuple[list[int], str]:
    """The indices of an extxyz text's frame headers (atom-count lines) in ``lines``, and why the frame after the
    last would stall a reader ("" when there is none): a count that is not a number, exceeds ``max_atoms`` or the
    lines left (a reader would allocate or wait for them)."""
    i, starts = 0, []
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        count = count_value(lines[i].strip())
        if count is None or count < 0:
            return starts, f"line {i + 1}: {short(lines[i].strip(), 40)!r} is not an atom count"
        if count > max_atoms or count > len(lines) - i - 2:
            left = max(len(lines) - i - 2, 0)
            return starts, f"line {i + 1}: a frame of {count:,} atoms, but only {left:,} lines follow"
        starts.append(i)
        i += count + 2
    return starts, ""


def extxyz_frames(text: str, max_atoms: int = 100_000, max_frames: int | None = None) -> tuple[int, str]:
    """``(frames, problem)`` of an extxyz text, in linear time: ``problem`` says why it would stall a reader ("" when
    it would not): a frame whose atom count is not a number, exceeds ``max_atoms`` or the lines left in the file (a
    reader would allocate or wait for them), or whose comment line is too long or declares absurd ``Properties``
    columns (read as ASE reads them). Lines end at ``\\n`` only, as ASE reads a text (a file's ``\\r\\n`` and ``\\r``
    are ``\\n`` once read as text). With ``max_frames``, a text of more frames has its comment lines unread."""
    lines = text.split("\n")
    if lines and not lines[-1]:
        lines.pop()  # the final newline ends the last line
    starts, problem = _extxyz_frame_lines(lines, max_atoms)
    if max_frames is not None and len(starts) > max_frames and not problem:
        return len(starts), ""
    for frame, i in enumerate(starts):
        comment_problem = _extxyz_comment_problem(lines[i + 1]) if i + 1 < len(lines) else ""
        if comment_problem:
            return frame, f"line {i + 2}: {comment_problem}"
    return len(starts), problem


def extxyz_frame_problem(text: str, max_atoms: int = 100_000) -> str:
    """The ``problem`` of :func:`extxyz_frames` ("" when a reader can read every frame in bounded memory)."""
    return extxyz_frames(text, max_atoms)[1]
