"""What train.py shows in a terminal: log lines on their own lines above the progress bar, the bar once."""
import io
import logging
import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from training_helpers import CONFIG

from rmdt.progress import BarSafeHandler, progress_bar

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = 240  # wider than every log line, so a line wraps only where something is glued to it
CSI = re.compile(r"\x1b\[([0-9;]*)([A-Za-z])")


def screen(raw: str, columns: int = COLUMNS) -> list:
    """The lines a terminal of ``columns`` columns shows for ``raw``: carriage returns overwrite, text
    past the last column wraps (when the next character comes, as terminals do), cursor-up and
    erase-line escapes move and erase; unbounded scrollback."""
    lines, row, col, i = [[]], 0, 0, 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\x1b":
            match = CSI.match(raw, i)
            if match:
                count = int(match.group(1) or 1)
                if match.group(2) == "A":
                    row = max(row - count, 0)
                elif match.group(2) == "K":
                    del lines[row][col:]
                i = match.end()
                continue
        if ch == "\r":
            col = 0
        elif ch == "\n":  # a line feed only; the pty's output processing sends the carriage return with it
            row += 1
        elif ch >= " ":
            if col >= columns:
                row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
            line = lines[row]
            line.extend(" " * (col + 1 - len(line)))
            line[col] = ch
            col += 1
        while len(lines) <= row:
            lines.append([])
        i += 1
    return ["".join(line).rstrip() for line in lines]


def test_screen_model():
    assert screen("ab\rc\r\n") == ["cb", ""]
    assert screen("abcd", columns=2) == ["ab", "cd"]
    assert screen("ab\rx\r\n12\x1b[A\rz") == ["zb", "12"]


def test_records_logged_through_an_open_bar_stand_on_lines_of_their_own():
    out = io.StringIO()
    log = logging.getLogger("rmdt.test_console")
    log.propagate, handler = False, BarSafeHandler(out)
    log.addHandler(handler)
    try:
        with progress_bar(total=3, file=out, ncols=60, mininterval=0) as bar:
            bar.update()
            log.warning("first record")
            bar.update(2)
            log.warning("second record")
    finally:
        log.removeHandler(handler)
    shown = [line for line in screen(out.getvalue(), columns=60) if line]
    assert shown[:2] == ["first record", "second record"] and len(shown) == 3 and "3/3 [" in shown[2]


def run_in_terminal(argv: list, timeout: float = 300) -> str:
    """Runs ``argv`` with stdin, stdout and stderr on a pseudo-terminal of COLUMNS columns; returns what it wrote."""
    import fcntl
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(argv, cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every copy of the terminal's other end is closed
                break
            if not chunk:
                break
            out += chunk
        else:
            process.kill()
            pytest.fail(f"{argv} ran past {timeout} s; it wrote {out[-2000:]!r}")
        assert process.wait(timeout=60) == 0, out.decode(errors="replace")[-2000:]
    finally:
        os.close(master)
    return out.decode()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_log_lines_stand_above_the_progress_bar_in_a_terminal(tiny, tmp_path):
    run = tmp_path / "run"
    raw = run_in_terminal([sys.executable, "train.py", str(CONFIG), *tiny, "--run-dir", str(run)])
    shown = screen(raw)
    logged = (run / "train.log").read_text().splitlines()
    assert len(logged) >= 5 and all(re.match(r"\d\d:\d\d:\d\d ", line) for line in logged)
    assert max(map(len, logged)) < COLUMNS
    for line in logged:  # each whole, from its timestamp, on a line of its own
        assert line in shown, f"{line!r} is not a line of its own on the screen:\n" + "\n".join(shown)
    bars = [i for i, line in enumerate(shown) if re.search(r"\d/6 \[", line)]  # "3/6 [00:01<00:01, ..."
    assert len(bars) == 1, "a bar shows more than once:\n" + "\n".join(shown)
    assert "6/6 [" in shown[bars[0]] and bars[0] > shown.index(logged[-1]), "the finished bar is not below the log"
    assert shown[bars[0] + 1] == f"trained: {run}/final"
