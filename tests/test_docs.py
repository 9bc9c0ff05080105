"""The Markdown pages render on GitHub as written, and what they say about the code is true.

GitHub runs its Markdown pass (cmark-gfm) *before* the math renderer, so a math span
reaches the renderer only if Markdown left it alone: a backslash before punctuation
(`\\,` `\\{` `\\|` ...) is an escape and loses its backslash, and two `_` or `*` in one
paragraph can pair up into italics across spans. These tests render every tracked page
with the same library (`cmarkgfm`) and check, for every math span of the source, that
its text is still there, verbatim, in the rendered page. They also check the tables
that name code, the blocks that quote library files, the relative links, and that the
old "source NNN" labels stay gone.
"""

import difflib
import re
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

cmarkgfm = pytest.importorskip("cmarkgfm", reason="needs cmarkgfm: pip install -e '.[test]'")
from cmarkgfm.cmark import Options  # noqa: E402  (only once cmarkgfm is known to be there)

ROOT = Path(__file__).resolve().parents[1]


def tracked(*patterns):
    """The repository's tracked files matching the git pathspecs (not .venv, not results
    still being written)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", *patterns],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):  # no git checkout: all but the usual extras
        skip = {
            ".git",
            ".venv",
            ".venv-ci",
            "venv",
            "build",
            "runs",
            ".hypothesis",
            ".pytest_cache",
        }
        suffixes = {p.lstrip("*") for p in patterns}
        return sorted(
            p
            for p in ROOT.rglob("*")
            if p.is_file()
            and p.suffix in suffixes
            and not skip.intersection(p.relative_to(ROOT).parts)
        )
    return sorted(ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file())


MD_PAGES = tracked("*.md")
PAGE_IDS = [str(p.relative_to(ROOT)) for p in MD_PAGES]


def render(markdown):
    """HTML as GitHub's Markdown pass makes it, each block tagged with data-sourcepos="l:c-l:c"."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_SOURCEPOS)


def squeeze(text):
    """Runs of whitespace as one space: line breaks and table padding do not count."""
    return " ".join(text.split())


# ----------------------------------------------------------------------------------------
# Reading the Markdown source: fenced code blocks, then math spans outside code
# ----------------------------------------------------------------------------------------

FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")


@dataclass(frozen=True)
class Fence:
    open_line: int  # 0-based index of the opening fence line
    close_line: int  # 0-based index of the closing fence line (len(lines) if never closed)
    info: str  # first word of the info string, e.g. "python", "math"
    body: list  # content lines, with the fence's own indentation removed


def fenced_blocks(lines):
    """The fenced code blocks of a page, in order."""
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if m is None or (m.group(2)[0] == "`" and "`" in lines[i][m.end(2) :]):
            i += 1
            continue
        indent, fence, info = len(m.group(1)), m.group(2), m.group(3)
        close = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            j += 1
        body = [re.sub(rf"^ {{0,{indent}}}", "", line) for line in lines[i + 1 : j]]
        blocks.append(Fence(i, j, info.lower(), body))
        i = j + 1
    return blocks


@dataclass(frozen=True)
class MathSpan:
    kind: str  # "inline" ($...$), "code" ($`...`$), "block" (```math), "display" ($$...$$)
    source: str  # the text as written in the page
    expected: str  # what the rendered page must contain for the span to have survived
    start: tuple  # (line, column) of its first character, 1-based, columns in bytes as in cmark
    end: tuple  # (line, column) of its last character


def _column(line, index):
    return len(line[:index].encode("utf-8")) + 1


def _backtick_run(s, i):
    n = 0
    while i + n < len(s) and s[i + n] == "`":
        n += 1
    return n


def _closing_backticks(s, start, n):
    """Index of the next run of exactly n backticks from start, or None (CommonMark code spans)."""
    i = start
    while i < len(s):
        if s[i] == "`":
            run = _backtick_run(s, i)
            if run == n:
                return i
            i += run
        else:
            i += 1
    return None


def _closing_dollar(s, start):
    """Index of the `$` that closes inline math opened just before start, or None.

    The closing `$` is unescaped, follows a non-space and is not followed by a digit,
    so that "$5 and $6" is no math.
    """
    i = start
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == "$" and not s[i - 1].isspace() and not s[i + 1 : i + 2].isdigit():
            return i
        i += 1
    return None


def _code_content(raw):
    """A code span's text as CommonMark renders it (line endings as spaces, one padding space
    stripped from each side)."""
    text = raw.replace("\n", " ")
    if len(text) >= 2 and text[0] == " " and text[-1] == " " and text.strip(" "):
        text = text[1:-1]
    return text


def _chunks(lines, fences):
    """Runs of consecutive lines outside code in which inline spans can live (blank lines,
    headings and table rows end them), as lists of 0-based line indices."""
    in_fence = set()
    for f in fences:
        in_fence.update(range(f.open_line, min(f.close_line, len(lines) - 1) + 1))
    chunks, current = [], []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if i in in_fence or not stripped:
            if current:
                chunks.append(current)
            current = []
        elif stripped.startswith(("|", "#")):
            if current:
                chunks.append(current)
            chunks.append([i])
            current = []
        else:
            current.append(i)
    if current:
        chunks.append(current)
    return chunks


def _inline_spans(s, where):
    """The `$...$`, `` $`...`$ `` and `$$...$$` spans of one chunk of text s outside code;
    where[k] is the (line, column) of s[k]."""
    spans = []

    def add(kind, a, b, expected):  # the span s[a:b]
        end_line, end_col = where[b - 1]
        spans.append(
            MathSpan(
                kind,
                s[a:b],
                expected,
                where[a],
                (end_line, end_col + len(s[b - 1].encode("utf-8")) - 1),
            )
        )

    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\":  # an escaped character is never a delimiter
            i += 2
        elif c == "`":  # a code span, or a run of literal backticks
            n = _backtick_run(s, i)
            close = _closing_backticks(s, i + n, n)
            i = i + n if close is None else close + n
        elif c != "$":
            i += 1
        elif s.startswith("$$", i):
            close = s.find("$$", i + 2)
            end = len(s) if close < 0 else close + 2
            add("display", i, end, None)
            i = end
        elif s[i + 1 : i + 2] == "`":
            n = _backtick_run(s, i + 1)
            close = _closing_backticks(s, i + 1 + n, n)
            if close is not None and s[close + n : close + n + 1] == "$":
                content = _code_content(s[i + 1 + n : close])
                add("code", i, close + n + 1, squeeze("$`" + content + "`$"))
                i = close + n + 1
            else:
                i += 1
        else:
            close = None if s[i + 1 : i + 2].isspace() else _closing_dollar(s, i + 1)
            if close is None:
                i += 1  # a lone dollar sign
            else:
                add("inline", i, close + 1, squeeze(s[i : close + 1]))
                i = close + 1
    return spans


def math_spans(markdown):
    """Every math span of a Markdown page, in order: `$...$`, `` $`...`$ ``, ```math blocks
    and (forbidden) `$$...$$` display blocks, outside code spans and fenced code blocks."""
    lines = markdown.split("\n")
    fences = fenced_blocks(lines)
    spans = []
    for f in fences:
        if f.info == "math" and "".join(f.body).strip():
            last = f.open_line + 1 + len(f.body)
            spans.append(
                MathSpan(
                    "block",
                    "\n".join(f.body),
                    squeeze("\n".join(f.body)),
                    (f.open_line + 2, 1),
                    (last, 1),
                )
            )
    for chunk in _chunks(lines, fences):
        where = []  # offset in the chunk's text -> (line, column)
        for i in chunk:
            where.extend((i + 1, _column(lines[i], k)) for k in range(len(lines[i]) + 1))
        spans.extend(_inline_spans("\n".join(lines[i] for i in chunk), where))
    return sorted(spans, key=lambda sp: sp.start)


# ----------------------------------------------------------------------------------------
# Reading the rendered page: the text of every block, by its source position
# ----------------------------------------------------------------------------------------


class _Blocks(HTMLParser):
    """Text of the rendered page, tags removed and entities decoded, in two versions:
    `full`, with <code> elements shown between backticks, and `prose`, with each code
    element masked (so a math span cannot pass by matching a code quote of itself).
    For every element carrying data-sourcepos: its source range and its slice of both."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.full, self.prose, self.blocks, self._open = [], [], [], []
        self._lengths = [0, 0]
        self._code = 0

    def _put(self, full, prose):
        self.full.append(full)
        self.prose.append(prose)
        self._lengths = [self._lengths[0] + len(full), self._lengths[1] + len(prose)]

    def handle_starttag(self, tag, attrs):
        if tag == "code":
            self._code += 1
            self._put("`", "\0")
        pos = dict(attrs).get("data-sourcepos")
        if pos:
            a, b = pos.split("-")
            start, end = (tuple(int(x) for x in p.split(":")) for p in (a, b))
            self._open.append((tag, start, end, tuple(self._lengths)))
        else:
            self._open.append((tag, None, None, None))

    def handle_startendtag(self, tag, attrs):  # <br />, <img />, <hr />: no text of their own
        pass

    def handle_endtag(self, tag):
        if tag == "code":
            self._code = max(self._code - 1, 0)
            self._put("`", "")
        while self._open:
            name, start, end, offsets = self._open.pop()
            if start is not None:
                self.blocks.append((start, end, offsets, tuple(self._lengths)))
            if name == tag:
                break

    def handle_data(self, data):
        self._put(data, "" if self._code else data)


@dataclass(frozen=True)
class Rendered:
    full: str
    prose: str
    blocks: list  # [(start, end, full text, prose text)], start and end as (line, column)

    def text_around(self, span):
        """(full, prose) text of the smallest rendered block whose source range holds the span
        (the whole page if none does)."""
        holding = [b for b in self.blocks if b[0] <= span.start and span.end <= b[1]]
        if not holding:
            return self.full, self.prose
        block = max(holding, key=lambda b: (b[0], tuple(-x for x in b[1])))
        return block[2], block[3]


def rendered(markdown):
    """The page as GitHub's Markdown pass renders it, as text by source block."""
    parser = _Blocks()
    parser.feed(render(markdown))
    parser.close()
    full, prose = "".join(parser.full), "".join(parser.prose)
    return Rendered(
        full,
        prose,
        [(start, end, full[a[0] : b[0]], prose[a[1] : b[1]]) for start, end, a, b in parser.blocks],
    )


def _counterpart(expected, text):
    """The stretch of the rendered text that most resembles the span: what the span became.

    Markdown only drops characters from a span (escapes, emphasis markers), so the span's
    longest intact piece fixes where it starts; of several places holding that piece
    (two spans with a common part), the one most like the span wins."""
    _, b, size = difflib.SequenceMatcher(None, text, expected, autojunk=False).find_longest_match(
        0, len(text), 0, len(expected)
    )
    if size == 0:
        return ""
    piece, candidates, at = expected[b : b + size], [], text.find(expected[b : b + size])
    while at >= 0:
        window = text[max(0, at - b - 2) : at - b + len(expected) + 2]
        matched = [
            m
            for m in difflib.SequenceMatcher(
                None, window, expected, autojunk=False
            ).get_matching_blocks()
            if m.size
        ]
        stretch = window[matched[0].a : matched[-1].a + matched[-1].size]
        likeness = difflib.SequenceMatcher(None, stretch, expected, autojunk=False).ratio()
        candidates.append((likeness, -at, stretch))
        at = text.find(piece, at + 1)
    return max(candidates)[2]


def _changes(expected, became):
    """[(what was written, what it became, the next characters written)] for each
    stretch that differs."""
    ops = difflib.SequenceMatcher(None, expected, became, autojunk=False).get_opcodes()
    return [
        (expected[i1:i2], became[j1:j2], expected[i2 : i2 + 4])
        for op, i1, i2, j1, j2 in ops
        if op != "equal"
    ]


def _change(old, new):
    old, new = old.replace("\0", "<code>"), new.replace("\0", "<code>")
    if not new:
        return f"lost `{old}`"
    return f"gained `{new}`" if not old else f"`{old}` became `{new}`"


HINTS = {
    "\\": "a backslash before punctuation is a Markdown escape: only the next character stays",
    "_": "two `_` in one paragraph paired up into italics (<em>) and vanished",
    "*": "two `*` in one paragraph paired up into emphasis and vanished",
    "~": "two `~` in one paragraph paired up into strikethrough and vanished",
    "\0": "part of the span became a code span",
}


@dataclass(frozen=True)
class Problem:
    span: MathSpan
    message: str

    def report(self, name):
        return f"{name}:{self.span.start[0]}: {self.message}"


def math_problems(markdown):
    """Every math span that GitHub's Markdown pass would alter, and every `$$` display block."""
    page = rendered(markdown)
    problems, groups = [], {}
    for span in math_spans(markdown):
        if span.kind == "display":
            first = span.source.split("\n")[0]
            more = " ..." if len(span.source) > 50 else ""
            problems.append(
                Problem(
                    span,
                    f"`$$` display math ({first[:50]}{more}) must be a "
                    "```math fenced block (Markdown mangles what is inside)",
                )
            )
            continue
        full, prose = page.text_around(span)
        # $...$ must be intact in the prose; $`...`$ and ```math are code, intact in the full text
        text = squeeze(prose if span.kind == "inline" else full)
        groups.setdefault((text, span.expected), []).append(span)
    for (text, expected), group in groups.items():
        intact = text.count(expected)
        if intact >= len(group):
            continue
        became = _counterpart(expected, text)
        changes = _changes(expected, became)
        touched = "".join(old + new for old, new, _ in changes)
        hints = [hint for ch, hint in HINTS.items() if ch in touched]
        copies = (
            f" ({len(group) - intact} of {len(group)} copies in this block)"
            if len(group) > 1
            else ""
        )
        shown = became.replace("\0", "<code>") or "(nothing like it in the rendered text)"
        for span in group:
            problems.append(
                Problem(
                    span,
                    (
                        f"{span.kind} math altered by Markdown{copies}\n"
                        f"      wrote:  {span.source if span.kind != 'block' else expected}\n"
                        f"      became: {shown}\n"
                        + "".join(
                            f"      {_change(old, new)} before `{after}`\n"
                            for old, new, after in changes[:6]
                        )
                        + "".join(f"      ({hint})\n" for hint in hints)
                    ).rstrip(),
                )
            )
    return sorted(problems, key=lambda p: p.span.start)


# -- unit tests of the reader and the check, on small pages ------------------------------


def sources(markdown):
    return [(sp.kind, sp.source) for sp in math_spans(markdown)]


def test_math_spans_finds_inline_code_and_block_math():
    page = (
        "Inputs $x_t \\in \\mathbb{R}^{B \\times I}$ and $`a \\, b`$ here,\n"
        "a span $h_t = \\tanh(a_t)$ and one across\nlines $a +\n b$.\n\n"
        "```math\nh_t = \\tanh(a_t) \\\\\n```\n"
    )
    assert sources(page) == [
        ("inline", "$x_t \\in \\mathbb{R}^{B \\times I}$"),
        ("code", "$`a \\, b`$"),
        ("inline", "$h_t = \\tanh(a_t)$"),
        ("inline", "$a +\n b$"),
        ("block", "h_t = \\tanh(a_t) \\\\"),
    ]
    assert math_spans(page)[3].start == (3, 7) and math_spans(page)[3].end == (4, 3)


def test_math_spans_skips_code_escapes_and_dollar_amounts():
    page = (
        "Code `$HOME` and ``a `$b$` c`` and \\$5 is no math, nor $5 and $6.\n\n"
        "```python\nprint('$a$', '$$')\n```\n\n"
        "    ```\n    $inside$\n    ```\n\n"
        "`unclosed $x$ is math\n"
    )
    assert sources(page) == [("inline", "$x$")]


def test_math_spans_reports_display_dollars_outside_code():
    page = "Text\n\n$$a_t = x_t W$$\n\nand `$$` in code is fine, and\n$$\nb\n$$\n"
    assert sources(page) == [("display", "$$a_t = x_t W$$"), ("display", "$$\nb\n$$")]
    problems = math_problems(page)
    assert [p.span.start[0] for p in problems] == [3, 6]
    assert "```math" in problems[0].message


def test_math_spans_in_table_cells_have_cell_positions():
    page = "| a | b |\n|---|---|\n| $x$ | $`y`$ |\n"
    spans = math_spans(page)
    assert [(sp.start, sp.end) for sp in spans] == [((3, 3), (3, 5)), ((3, 9), (3, 13))]


def test_backslash_comma_in_a_table_is_caught():
    page = (
        "| node | local derivative |\n|---|---|\n"
        "| input projection | $dx_t = dxw_t\\, W^\\top$, $dW = x_t^\\top dxw_t$ |\n"
    )
    problems = math_problems(page)
    assert len(problems) == 1, problems
    message = problems[0].report("page.md")
    assert message.startswith("page.md:3: inline math altered")
    assert "became: $dx_t = dxw_t, W^\\top$" in message
    assert "backslash" in message


def test_underscore_pairs_becoming_italics_are_caught():
    page = "Mean $\\mathbf{x}_i$ and variance $\\mathbf{y}_{i}$ of the batch.\n"
    problems = math_problems(page)
    assert [p.span.source for p in problems] == ["$\\mathbf{x}_i$", "$\\mathbf{y}_{i}$"]
    assert "italics" in problems[0].message
    # the same spans written as $`...`$ survive
    assert math_problems("Mean $`\\mathbf{x}_i`$ and variance $`\\mathbf{y}_{i}`$.\n") == []


def test_braces_bars_and_stars_are_caught_and_clean_math_passes():
    assert len(math_problems("Set $\\{a\\}$ and norm $\\|x\\|$.\n")) == 2
    assert len(math_problems("Products $a*b$ and $c*d$.\n")) == 2
    quoted = math_problems("A span $a `b` c$ with backticks.\n")
    assert len(quoted) == 1 and "became a code span" in quoted[0].message, quoted
    clean = (
        "For a batch of $B$ sequences, $h_t = \\tanh(x_t W + h_{t-1} U + b)$ with\n"
        "$W \\in \\mathbb{R}^{I \\times H}$; in a table:\n\n"
        "| a | b |\n|---|---|\n| $a_t$ | $`dx = dy\\, W^\\top`$ |\n\n"
        "```math\n\\begin{aligned} a &= b \\\\ c_{t} &= d_{t} \\end{aligned}\n```\n"
    )
    assert math_problems(clean) == []


def test_a_code_quote_of_a_span_does_not_hide_its_alteration():
    page = "Write `$\\{a\\}$` as $\\{a\\}$ and $x_t$ as $x_t$.\n"
    problems = math_problems(page)
    assert [(p.span.source, p.span.start) for p in problems] == [("$\\{a\\}$", (1, 20))], problems
    assert len(math_problems("Twice: $\\{a\\}$, $\\{a\\}$.\n")) == 2


# -- the check on every page ------------------------------------------------------------


@pytest.mark.parametrize("page", MD_PAGES, ids=PAGE_IDS)
def test_math_survives_githubs_markdown_pass(page):
    name = page.relative_to(ROOT)
    problems = math_problems(page.read_text(encoding="utf-8"))
    if problems:
        pytest.fail(
            f"{name}: {len(problems)} math span(s) would not reach GitHub's math renderer "
            "as written (cmark-gfm runs first). Write such spans as $`...`$, which "
            "Markdown leaves verbatim, or as a ```math fenced block:\n"
            + "\n".join(p.report(name) for p in problems),
            pytrace=False,
        )


# ----------------------------------------------------------------------------------------
# Code-name tables: the names they list exist in the files their header names
# ----------------------------------------------------------------------------------------

DELIMITER_ROW = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)")
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_])[A-Za-z_][A-Za-z0-9_]*")
PY_PATH = re.compile(r"^[\w./-]+\.py$")


def table_cells(line):
    """The cells of a table row, split on unescaped pipes (as GFM does, code spans included)."""
    row = line.strip()
    row = row.removeprefix("|")
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)]


def code_spans(cell):
    """Contents of the backticked spans of a table cell, leaving out math written as $`...`$."""

    def is_math(m):  # $`...`$
        return cell[max(m.start() - 1, 0) : m.start()] == "$" and cell[m.end() : m.end() + 1] == "$"

    return [m.group(2) for m in CODE_SPAN.finditer(cell) if not is_math(m)]


def code_name_tables(markdown):
    """For each column whose header cell names .py files in backticks:
    (header line, [paths], [(row line, cell text)]) with 1-based line numbers."""
    lines = markdown.split("\n")
    in_fence = set()
    for f in fenced_blocks(lines):
        in_fence.update(range(f.open_line, f.close_line + 1))
    found = []
    for i in range(len(lines) - 1):
        is_header = lines[i].strip().startswith("|") and DELIMITER_ROW.match(lines[i + 1])
        if i in in_fence or not is_header:
            continue
        rows = []
        j = i + 2
        while j < len(lines) and j not in in_fence and lines[j].strip().startswith("|"):
            rows.append((j + 1, table_cells(lines[j])))
            j += 1
        for k, header in enumerate(table_cells(lines[i])):
            paths = [c.strip() for c in code_spans(header) if PY_PATH.match(c.strip())]
            if paths:
                found.append((i + 1, paths, [(n, cells[k]) for n, cells in rows if k < len(cells)]))
    return found


def code_name_problems(markdown, root=ROOT):
    problems = []
    for header_line, paths, rows in code_name_tables(markdown):
        words = set()
        for path in paths:
            file = root / path
            if not file.is_file():
                problems.append(f"{header_line}: the header names `{path}`, which does not exist")
                continue
            words.update(IDENTIFIER.findall(file.read_text(encoding="utf-8")))
        if len(words) == 0:
            continue
        for line, cell in rows:
            for code in code_spans(cell):
                missing = [name for name in IDENTIFIER.findall(code) if name not in words]
                if missing:
                    problems.append(
                        f"{line}: `{code}` names {', '.join(missing)}, "
                        f"not a word in {', '.join(paths)}"
                    )
    return problems


def test_code_name_table_reader_catches_a_missing_name():
    page = (
        "| symbol | code name in `minirnn/cells/rnn.py` | shape |\n"
        "|---|---|---|\n"
        "| $h_t$ | `hs[t]`, `step_backward` | (B, H) |\n"
        "| $U^\\top$ | `UT`, `no_such_name_in_rnn` | (H, H) |\n"
        "| $b$ | $`b`$ (math, not a name) | `not_checked_here` |\n"
        "\nText after the table with `also_not_checked`.\n"
    )
    assert code_name_tables(page)[0][:2] == (1, ["minirnn/cells/rnn.py"])
    problems = code_name_problems(page)
    assert len(problems) == 1 and problems[0].startswith("4: `no_such_name_in_rnn`"), problems
    assert code_name_problems(page.replace("cells/rnn.py", "cells/no_such_cell.py"))[0].startswith(
        "1: the header names `minirnn/cells/no_such_cell.py`"
    )


def test_code_name_table_reader_reads_several_files_and_ignores_plain_tables():
    page = (
        "| symbol | code name (`minirnn/cells/lstm.py`, `minirnn/cells/_lstm_gates.py`) |\n"
        "|:--|--:|\n| $i_t$ | `forward` |\n"
    )
    assert code_name_tables(page)[0][1] == ["minirnn/cells/lstm.py", "minirnn/cells/_lstm_gates.py"]
    assert code_name_tables("| symbol | code name |\n|---|---|\n| $a$ | `nowhere_at_all` |\n") == []


@pytest.mark.parametrize("page", MD_PAGES, ids=PAGE_IDS)
def test_code_name_tables_name_what_exists(page):
    name = page.relative_to(ROOT)
    problems = code_name_problems(page.read_text(encoding="utf-8"))
    if problems:
        pytest.fail(
            f"{name}: code-name tables list names that the files in their header do not "
            "contain:\n" + "\n".join(f"{name}:{p}" for p in problems),
            pytrace=False,
        )


# ----------------------------------------------------------------------------------------
# Quoted code: a ```python block that starts with `# minirnn/<path>.py` is that file's text
# ----------------------------------------------------------------------------------------

QUOTE_HEADER = re.compile(r"^# (minirnn/[\w/]+\.py)$")


def quoted_code_problems(markdown, root=ROOT):
    problems = []
    for block in fenced_blocks(markdown.split("\n")):
        if block.info != "python" or not block.body or not QUOTE_HEADER.match(block.body[0]):
            continue
        path = QUOTE_HEADER.match(block.body[0]).group(1)
        line = block.open_line + 2
        quote = "\n".join(block.body[1:]).strip("\n")
        file = root / path
        if not file.is_file():
            problems.append(f"{line}: quotes `{path}`, which does not exist")
        elif not quote.strip():
            problems.append(f"{line}: quotes `{path}` but holds nothing after the header line")
        elif quote not in file.read_text(encoding="utf-8"):
            text = file.read_text(encoding="utf-8").split("\n")
            first_bad = next((q for q in quote.split("\n") if q not in text), None)
            problems.append(
                f"{line}: the quote of `{path}` is not verbatim in that file"
                + (
                    f"; no line of the file reads {first_bad!r}"
                    if first_bad is not None
                    else " (its lines exist, but not in this order together)"
                )
            )
    return problems


def test_quoted_code_reader_catches_edited_quotes():
    source = (ROOT / "minirnn/cells/rnn.py").read_text(encoding="utf-8").split("\n")
    start = next(i for i, s in enumerate(source) if s.startswith("def "))
    excerpt = "\n".join(source[start : start + 3])
    page = f"Text.\n\n```python\n# minirnn/cells/rnn.py\n{excerpt}\n```\n"
    assert quoted_code_problems(page) == []
    edited = page.replace(source[start + 1], source[start + 1] + "  # edited")
    assert quoted_code_problems(edited)[0].startswith(
        "4: the quote of `minirnn/cells/rnn.py` is not verbatim"
    )
    reordered = f"```python\n# minirnn/cells/rnn.py\n{source[start + 1]}\n{source[start]}\n```\n"
    assert "not in this order" in quoted_code_problems(reordered)[0]
    missing = page.replace("cells/rnn.py", "cells/nope.py")
    assert "does not exist" in quoted_code_problems(missing)[0]
    # a block that merely mentions a path later, or another language, is no quote
    assert quoted_code_problems("```python\nx = 1\n# minirnn/cells/rnn.py\n```\n") == []
    assert quoted_code_problems("```text\n# minirnn/cells/rnn.py\nnot python\n```\n") == []


@pytest.mark.parametrize("page", MD_PAGES, ids=PAGE_IDS)
def test_quoted_code_is_verbatim(page):
    name = page.relative_to(ROOT)
    problems = quoted_code_problems(page.read_text(encoding="utf-8"))
    if problems:
        pytest.fail("\n".join(f"{name}:{p}" for p in problems), pytrace=False)


# ----------------------------------------------------------------------------------------
# Links: relative, inside the repository, to files (and headings) that exist
# ----------------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links, self.headings, self._heading = [], [], None
        self._line = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("data-sourcepos"):
            self._line = int(attrs["data-sourcepos"].split(":")[0])
        if tag == "a" and attrs.get("href") is not None:
            self.links.append((self._line, "link", attrs["href"]))
        if tag == "img" and attrs.get("src") is not None:
            self.links.append((self._line, "image", attrs["src"]))
        if re.fullmatch(r"h[1-6]", tag):
            self._heading = []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if re.fullmatch(r"h[1-6]", tag) and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)


def _links(markdown):
    parser = _Links()
    parser.feed(render(markdown))
    parser.close()
    return parser


def github_anchors(markdown):
    """The anchors GitHub gives a page's headings: lowercase, punctuation but `-` and `_`
    dropped, spaces as hyphens, repeats numbered -1, -2, ..."""
    anchors, seen = set(), {}
    for heading in _links(markdown).headings:
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def link_problems(markdown, page, root=ROOT):
    """Relative links and images of a page that point at nothing, outside the repository,
    or at a heading the target page does not have."""
    problems, root = [], root.resolve()
    lines = markdown.split("\n")
    for block_line, kind, url in _links(markdown).links:
        # the line that spells the URL (blocks only carry their first line; a reference
        # link's URL stands in its definition), else the block's first line
        order = [*range(max(block_line, 1), len(lines) + 1), *range(1, max(block_line, 1))]
        line = next((n for n in order if url in lines[n - 1]), block_line)
        parts = urlsplit(url)
        if parts.scheme or parts.netloc:
            if parts.scheme == "file":
                problems.append(f"{line}: {kind} {url!r} points outside the repository")
            continue
        if parts.path.startswith("/"):
            problems.append(f"{line}: {kind} {url!r} is absolute; write it relative to the page")
            continue
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page.resolve()
        if target != root and root not in target.parents:
            problems.append(f"{line}: {kind} {url!r} leaves the repository")
        elif not target.exists():
            problems.append(
                f"{line}: {kind} {url!r} points at {target.relative_to(root)}, which does not exist"
            )
        elif (
            parts.fragment
            and target.suffix == ".md"
            and not re.fullmatch(r"L\d+(-L\d+)?", parts.fragment)
        ):
            text = markdown if target == page.resolve() else target.read_text(encoding="utf-8")
            if unquote(parts.fragment).lower() not in github_anchors(text):
                problems.append(
                    f"{line}: {kind} {url!r}: {target.relative_to(root)} has no "
                    f"heading with the anchor #{parts.fragment}"
                )
    return problems


def test_link_checker_catches_missing_escaping_and_anchor_links(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "references.md").write_text(
        "# References\n\n### Cooijmans et al. 2017\n\ntext\n"
    )
    (tmp_path / "plot.png").write_bytes(b"png")
    page = tmp_path / "docs" / "page.md"
    text = (
        "[ok](references.md#cooijmans-et-al-2017), ![plot](../plot.png), [w](https://a.org),\n"
        "[here](#a-heading) and `[not a link](nowhere.md)`\n\n"
        "## A heading\n\n"
        "[missing](nowhere.md) [out](../../shared/DESIGN.md) [abs](/docs/references.md)\n"
        "![gone](figures/gone.png) [bad anchor](references.md#cooijmans-2016)\n\n"
        "[ref]: ../shared/x.md\n\nSee [ref].\n"
    )
    page.write_text(text)
    problems = link_problems(text, page, tmp_path)
    assert [p.split(":")[0] for p in problems] == ["6", "6", "6", "7", "7", "9"], problems
    assert "does not exist" in problems[0] and "leaves the repository" in problems[1]
    assert "absolute" in problems[2] and "figures/gone.png" in problems[3]
    assert "#cooijmans-2016" in problems[4] and "../shared/x.md" in problems[5]


def test_github_anchors():
    page = (
        "# minirnn\n\n### Cooijmans et al. 2017\n\n## Speed: `numba` & BLAS\n\n"
        "## Notes\n\n## Notes\n"
    )
    assert github_anchors(page) == {
        "minirnn",
        "cooijmans-et-al-2017",
        "speed-numba--blas",
        "notes",
        "notes-1",
    }


@pytest.mark.parametrize("page", MD_PAGES, ids=PAGE_IDS)
def test_relative_links_point_inside_the_repository(page):
    name = page.relative_to(ROOT)
    problems = link_problems(page.read_text(encoding="utf-8"), page)
    if problems:
        pytest.fail("\n".join(f"{name}:{p}" for p in problems), pytrace=False)


# ----------------------------------------------------------------------------------------
# The old numbered labels of the four write-ups stay gone
# ----------------------------------------------------------------------------------------

OLD_LABEL = re.compile(r"[Ss]ource 00[0-3]")


def test_old_source_labels_are_gone():
    assert OLD_LABEL.search("as in S" + "ource 002's code")  # the pattern itself works
    hits = []
    for path in tracked("*.md", "*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if OLD_LABEL.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    if hits:
        pytest.fail(
            "name the write-ups by their short names from docs/references.md "
            "(e.g. 'the Qiita BN-LSTM note'), not by number:\n" + "\n".join(hits),
            pytrace=False,
        )
