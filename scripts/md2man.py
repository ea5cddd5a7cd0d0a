#!/usr/bin/env python3
"""Turn one of cairn's docs/*.md pages into a man page (roff, man macros).

usage: md2man.py INPUT.md OUTPUT.1 --name NAME (--summary TEXT | --table MAIN.C)
                 --version V [--see-also PAGE]...

--table takes a subcommand's one-line summary (cairn-publish: publish's)
from the command table in src/main.c, the text `cairn --help` prints, so
that the NAME line never drifts from it.

It reads the Markdown that docs/ is written in, and nothing more: headings
(#, ##, ###), paragraphs, fenced code blocks (also inside list items), "-"
and "1." lists (nested by indentation), pipe tables, and inline `code`,
**bold**, *italic* and [links](url).  Anything else (block quotes, raw
HTML, deeper headings, an unclosed fence or code span) is an error, so a
page that would come out wrong breaks the build instead of the man page.

Layout: NAME from --name/--summary; SYNOPSIS from the first code block
before the first ## heading whose lines are commands; DESCRIPTION from the
rest of the text before that heading; then one section per ## heading,
except "Tests" (about this repository, not the installed program); SEE
ALSO last.  Tables become tagged paragraphs (.TP): the first cell is the
tag; with more than two columns each further cell is labelled with its
column's heading.  A `docs/cairn-X.md` reference becomes cairn-X(1).

The output is plain ASCII, so it renders the same under any locale.
"""
import argparse
import os
import re
import sys

# Characters the pages use that roff has names for; others become \[uXXXX].
NAMED = {
    "\u2014": r"\(em", "\u2013": r"\(en", "\u2192": r"\(->", "\u00d7": r"\(mu",
    "\u2026": "...", "\u2265": r"\(>=", "\u2264": r"\(<=", "\u2018": r"\(oq",
    "\u2019": r"\(cq", "\u201c": r"\(lq", "\u201d": r"\(rq",
}
SKIPPED_SECTIONS = {"tests"}


class PageError(Exception):
    pass


def esc(text):
    """Escape plain text for roff (not at a line start: see line())."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append(r"\e")
        elif ch == "-":
            out.append(r"\-")
        elif ch in NAMED:
            out.append(NAMED[ch])
        elif ord(ch) > 126:
            out.append(r"\[u%04X]" % ord(ch))
        elif ord(ch) < 32 and ch not in "\t\n":
            raise PageError("control character %r" % ch)
        else:
            out.append(ch)
    return "".join(out)


def line(text):
    """A roff text line: one starting with . or ' would be a request."""
    return "\\&" + text if text[:1] in (".", "'") else text


DOC_REF = re.compile(r"^docs/(cairn(?:-[a-z]+)?)\.md$")


def inline(text):
    """Markdown inline markup to roff: code spans are literal (bold)."""
    out = []
    parts = re.split(r"(`+)", text)
    i = 0
    while i < len(parts):
        part = parts[i]
        if part.startswith("`"):
            try:
                close = parts.index(part, i + 1)
            except ValueError:
                raise PageError("unclosed code span in %r" % text)
            code = "".join(parts[i + 1:close])
            if len(part) > 1:
                code = code.strip()
            m = DOC_REF.match(code)
            if m:
                out.append(r"\fB%s\fR(1)" % esc(m.group(1)))
            else:
                out.append(r"\fB%s\fR" % breakable(code))
            i = close + 1
            continue
        out.append(emphasis(part))
        i += 1
    return "".join(out)


def breakable(code):
    """Escape a literal, letting a long one (a hash, a line of JSON) break
    after , : / or every 40 characters, without a hyphen, rather than run
    off the line."""
    out, run = [], 0
    for k, ch in enumerate(code):
        out.append(esc(ch))
        run = 0 if ch in " \n" else run + 1
        if k + 1 < len(code) and code[k + 1] not in " \n" and (ch in ",:/" or run >= 40):
            out.append(r"\:")
            run = 0
    return "".join(out)


def emphasis(text):
    text = text.replace(r"\|", "|").replace(r"\*", "\0")
    text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)",
                  lambda m: m.group(1) + (" <%s>" % m.group(2)
                                          if "://" in m.group(2) else ""), text)
    pieces = re.split(r"(\*\*[^*]+\*\*|\*[^*\s][^*]*\*)", text)
    out = []
    for p in pieces:
        if p.startswith("**") and p.endswith("**") and len(p) > 4:
            out.append(r"\fB%s\fR" % esc(p[2:-2]))
        elif p.startswith("*") and p.endswith("*") and len(p) > 2:
            out.append(r"\fI%s\fR" % esc(p[1:-1]))
        else:
            if "*" in p:
                raise PageError("stray '*' in %r" % text)
            out.append(esc(p))
    return "".join(out).replace("\0", "*")


def fill(text):
    """Running text as roff lines (one per source line)."""
    text = "\n".join(l.strip() for l in text.split("\n") if l.strip())
    return [line(l.strip()) for l in inline(text).split("\n") if l.strip()]


def cells(row):
    row = row.strip()
    if not (row.startswith("|") and row.endswith("|")):
        raise PageError("table row must start and end with '|': %r" % row)
    # GitHub's rule: \| is a | in the cell, also inside a code span
    return [c.strip().replace(r"\|", "|") for c in re.split(r"(?<!\\)\|", row[1:-1])]


def table(rows):
    head = cells(rows[0])
    if len(rows) < 2 or not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", rows[1].strip()):
        raise PageError("table without a separator row: %r" % rows[0])
    out = []
    for r in rows[2:]:
        c = cells(r)
        if len(c) != len(head):
            raise PageError("table row has %d cells, heading %d: %r" % (len(c), len(head), r))
        out.append(".TP")
        out.append(line(inline(c[0])))
        if len(head) == 2:
            out.append(line(inline(c[1])) if c[1] else r"\&")
        else:
            for k in range(1, len(c)):
                if k > 1:
                    out.append(".br")
                out.append(line(r"\fI%s\fR: %s" % (inline(head[k]), inline(c[k]))))
    return out


def code_block(lines):
    out = [".RS 4", ".nf"]
    for l in lines:
        out.append(line(esc(l)) if l else r"\&")
    out += [".fi", ".RE"]
    return out


ITEM = re.compile(r"^( *)([-*]|\d+\.) +(.*)$")
FENCE = re.compile(r"^( *)```")
# raw HTML at the start of a line; "<hash>.narinfo" is text
HTML = re.compile(r"^<(!--|/?(a|b|i|p|br|hr|img|div|pre|code|sub|sup|table|details|summary)\b)",
                  re.I)


class Converter:
    def __init__(self, text):
        self.lines = text.split("\n")
        self.i = 0

    def peek(self):
        return self.lines[self.i] if self.i < len(self.lines) else None

    def fence(self, indent):
        """The code block whose opening fence is at self.i."""
        start = self.i
        self.i += 1
        body = []
        while True:
            l = self.peek()
            if l is None:
                raise PageError("line %d: unclosed code block" % (start + 1))
            self.i += 1
            if FENCE.match(l) and l.strip() == "```":
                return body
            if l.strip() and not l.startswith(" " * indent):
                raise PageError("line %d: code block line less indented than its fence"
                                % self.i)
            body.append(l[indent:].rstrip())

    def paragraph(self):
        buf = []
        while True:
            l = self.peek()
            if l is None or not l.strip() or FENCE.match(l) or ITEM.match(l) \
                    or l.startswith("#") or l.lstrip().startswith("|"):
                break
            buf.append(l)
            self.i += 1
        return fill("\n".join(buf))

    def list_block(self, indent):
        """Items at this indentation (and what is nested in them)."""
        out = []
        while True:
            l = self.peek()
            m = ITEM.match(l) if l is not None else None
            if not m or len(m.group(1)) != indent:
                return out
            mark = m.group(2)
            tag = r"\(bu" if mark in ("-", "*") else mark
            out.append(".IP %s 4" % tag)
            body_indent = indent + len(mark) + 1
            text = [m.group(3)]
            self.i += 1
            while True:  # lines continuing the item's first paragraph
                l = self.peek()
                if l is None or not l.strip() or ITEM.match(l) or FENCE.match(l) \
                        or len(l) - len(l.lstrip()) < body_indent:
                    break
                text.append(l)
                self.i += 1
            out += fill("\n".join(text))
            while True:  # nested lists, code blocks, further paragraphs
                j = self.i
                while j < len(self.lines) and not self.lines[j].strip():
                    j += 1
                if j >= len(self.lines):
                    self.i = j
                    return out
                nxt = self.lines[j]
                lead = len(nxt) - len(nxt.lstrip())
                if lead < body_indent:
                    break
                self.i = j
                m2 = ITEM.match(nxt)
                f = FENCE.match(nxt)
                out.append(".RS 4" if m2 else ".IP")
                if m2:
                    out += self.list_block(len(m2.group(1)))
                    out.append(".RE")
                elif f:
                    out += code_block(self.fence(len(f.group(1))))
                else:
                    out += self.paragraph()
            # a blank line, then an item at this level: the list goes on
            j = self.i
            while j < len(self.lines) and not self.lines[j].strip():
                j += 1
            m3 = ITEM.match(self.lines[j]) if j < len(self.lines) else None
            if not (m3 and len(m3.group(1)) == indent):
                return out
            self.i = j

    def blocks(self, stop_at_h2):
        """Blocks up to the next ## heading (or the end)."""
        out = []
        while True:
            l = self.peek()
            if l is None:
                return out
            s = l.strip()
            if not s:
                self.i += 1
            elif l.startswith("## ") and stop_at_h2:
                return out
            elif l.startswith("### "):
                self.i += 1
                out += [".SS", line(inline(l[4:].strip()))]
            elif l.startswith("#"):
                raise PageError("line %d: unexpected heading %r" % (self.i + 1, l))
            elif FENCE.match(l):
                out += [".PP"] + code_block(self.fence(len(FENCE.match(l).group(1))))
            elif ITEM.match(l):
                m = ITEM.match(l)
                out += [".PP"] if not out or out[-1].startswith(".S") else []
                out += self.list_block(len(m.group(1)))
                out.append(".PP")
            elif s.startswith("|"):
                rows = []
                while self.peek() is not None and self.peek().strip().startswith("|"):
                    rows.append(self.peek())
                    self.i += 1
                out += [".PP"] + table(rows)
                out.append(".PP")
            elif s.startswith(">") or HTML.match(s):
                raise PageError("line %d: block quotes and HTML are not supported"
                                % (self.i + 1))
            else:
                out += [".PP"] + self.paragraph()

    def convert(self, name, summary, version, see_also):
        out = [
            r'.\" Generated from docs/%s.md by scripts/md2man.py; do not edit.' % name,
            '.TH "%s" 1 "" "cairn %s" "cairn manual"' % (name.upper(), version),
            # options and paths must not be hyphenated, nor lines stretched
            # around them
            ".nh",
            ".ad l",
            ".SH NAME",
            r"%s \- %s" % (esc(name), esc(summary)),
        ]
        while self.peek() is not None and not self.peek().strip():
            self.i += 1
        if self.peek() is None or not self.peek().startswith("# "):
            raise PageError("the page must open with a '# ' title")
        self.i += 1
        # the synopsis: the first code block before any ## that holds commands
        synopsis = None
        j = self.i
        while j < len(self.lines) and not self.lines[j].startswith("## "):
            if self.lines[j].startswith("```"):
                k = j + 1
                while k < len(self.lines) and self.lines[k].strip() != "```":
                    k += 1
                block = [l.rstrip() for l in self.lines[j + 1:k]]
                if block and block[0].startswith("cairn"):
                    synopsis = block
                    del self.lines[j:k + 1]
                break
            j += 1
        desc = self.blocks(True)
        if synopsis:
            out += [".SH SYNOPSIS", ".nf"] + [line(esc(l)) for l in synopsis] + [".fi"]
        if desc:
            out += [".SH DESCRIPTION"] + desc
        while self.peek() is not None:
            l = self.peek()
            title = l[3:].strip()
            self.i += 1
            body = self.blocks(True)
            if title.lower() in SKIPPED_SECTIONS:
                continue
            out += [".SH", line(upper_outside_code(title))] + body
        if see_also:
            out.append(".SH SEE ALSO")
            out.append(",\n".join(r"\fB%s\fR(1)" % esc(p) for p in see_also))
        # no .PP right before a heading or at the end: an empty paragraph
        tidy = []
        for k, o in enumerate(out):
            nxt = out[k + 1] if k + 1 < len(out) else ".SH"
            if o == ".PP" and (nxt.startswith(".SH") or nxt.startswith(".SS")
                               or nxt in (".PP", ".TP", ".IP") or nxt.startswith(".IP ")):
                continue
            tidy.append(o)
        return "\n".join(tidy) + "\n"


def upper_outside_code(title):
    parts = re.split(r"(`[^`]*`)", title)
    # option names keep their case: "--diff", not "--DIFF"
    up = lambda p: re.sub(r"(?<![\w-])(?!-)[^\s]+", lambda w: w.group(0).upper(), p)
    return inline("".join(p if p.startswith("`") else up(p) for p in parts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--name", required=True)
    ap.add_argument("--summary")
    ap.add_argument("--table")
    ap.add_argument("--version", required=True)
    ap.add_argument("--see-also", action="append", default=[])
    a = ap.parse_args()
    with open(a.input, encoding="utf-8") as f:
        text = f.read()
    if a.table:
        with open(a.table, encoding="utf-8") as f:
            table_text = f.read()
        cmd = a.name.split("-", 1)[-1]
        m = re.search(r'\{\s*"%s",\s*cmd_\w+,\s*"([^"]+)"' % re.escape(cmd), table_text)
        if not m:
            sys.exit("%s: no row for '%s' in the command table" % (a.table, cmd))
        a.summary = m.group(1)
    if not a.summary:
        sys.exit("md2man.py: --summary or --table is needed")
    try:
        page = Converter(text).convert(a.name, a.summary, a.version, a.see_also)
    except PageError as e:
        sys.exit("%s: %s" % (a.input, e))
    tmp = a.output + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(page)
    os.replace(tmp, a.output)


if __name__ == "__main__":
    main()
