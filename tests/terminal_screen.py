"""A minimal terminal screen for tests: what a terminal shows after a stream of text and control sequences.

Enough for rich's live display: printable text with line wrap (the wrap happens when a character is written
past the last column, as in xterm), ``\\r``, ``\\n``, cursor up/down (``CSI n A``/``B``), column (``CSI n G``),
erase in line (``CSI K``, ``CSI 2K``); colours and other sequences are ignored.
"""

from __future__ import annotations

import re

CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(data: str, columns: int) -> list[str]:
    """The lines on screen (trailing blanks removed) after writing ``data`` to a ``columns``-wide terminal."""
    lines: list[list[str]] = [[]]
    row = col = 0

    def reach(r: int) -> None:
        while len(lines) <= r:
            lines.append([])

    i = 0
    while i < len(data):
        m = CSI.match(data, i)
        if m:
            arg, cmd = m.groups()
            n = int(arg) if arg.isdigit() else None
            if cmd == "A":
                row = max(0, row - (n or 1))
            elif cmd == "B":
                row += n or 1
            elif cmd == "G":
                col = (n or 1) - 1
            elif cmd == "K":
                reach(row)
                if n == 2:
                    lines[row] = []
                elif not n:
                    del lines[row][col:]
            reach(row)
            i = m.end()
            continue
        ch = data[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            reach(row)
        elif ch >= " " and ch != "\x7f":
            if col >= columns:  # the pending wrap
                row, col = row + 1, 0
                reach(row)
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            col += 1
    return ["".join(line).rstrip() for line in lines]
