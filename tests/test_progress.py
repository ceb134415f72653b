"""Progress lines on a stream that is not a terminal (a SLURM log): done/total, rate, time left, heartbeat."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest

from pccd_hpc.progress import Progress, format_duration


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pccd_hpc.progress"]


def test_every_n_items_a_line_with_done_total_rate_and_time_left(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pccd_hpc.progress")
    with Progress("sampling", 10, "sample", every_n=4, stream=io.StringIO(), min_gap_s=0) as progress:
        for _ in range(10):
            progress.update()
    lines = _lines(caplog)
    assert [re.match(r"sampling: (\d+)/10 samples", line).group(1) for line in lines] == ["4", "8", "10"]
    assert "(40.0 %)" in lines[0] and "samples/s" in lines[0] and "left" in lines[0]
    assert lines[-1].endswith("done")


def test_a_fast_loop_writes_few_lines_but_always_the_last(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pccd_hpc.progress")
    with Progress("decoding", 1000, "sample", stream=io.StringIO(), heartbeat=False) as progress:
        for _ in range(1000):
            progress.update()
    lines = _lines(caplog)
    assert len(lines) <= 2 and lines[-1].startswith("decoding: 1000/1000 samples") and lines[-1].endswith("done")


def test_a_heartbeat_line_while_one_item_takes_longer_than_every_s(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pccd_hpc.progress")
    started = time.time()
    with Progress("validation", 3, "structure", every_s=0.2, stream=io.StringIO()) as progress:
        time.sleep(0.7)  # the first structure is still relaxing
        assert any("0/3 structures" in line and "first results pending" in line for line in _lines(caplog))
        times = [started] + [r.created for r in caplog.records if r.name == "pccd_hpc.progress"]
        assert len(times) >= 3 and max(b - a for a, b in zip(times, times[1:])) < 0.2 + 0.1  # never much over every_s
        progress.update()
        time.sleep(0.5)
    assert any(line.startswith("validation: 1/3 structures (33.3 %)") and "about" in line for line in _lines(caplog))


def test_skipped_items_count_as_done_but_not_towards_the_rate(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pccd_hpc.progress")
    progress = Progress("decoding", 100, "sample", every_n=1000, stream=io.StringIO())
    progress.skip(90)
    assert "90/100 samples (90.0 %)" in progress.line() and "first results pending" in progress.line()
    progress.update(5)
    progress.close()  # ended early: a last line says where it stopped
    assert _lines(caplog)[-1].startswith("decoding: 95/100 samples")


def test_a_terminal_gets_a_tqdm_bar_and_no_log_lines(caplog) -> None:
    caplog.set_level(logging.INFO, logger="pccd_hpc.progress")
    terminal = _Terminal()
    with Progress("sampling", 4, "sample", every_n=1, stream=terminal) as progress:
        progress.update(4)
    assert "4/4" in terminal.getvalue() and not _lines(caplog)


@pytest.mark.parametrize("seconds,text", [(42, "42 s"), (600, "10 min"), (3 * 3600 + 300, "3 h 05 min"),
                                          (50 * 3600, "2 d 02 h"), (float("inf"), "unknown")])
def test_durations_read_at_a_glance(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_batch_under_way_gives_a_rate_and_time_left_before_it_ends(caplog) -> None:
    progress = Progress("sampling", 512, "sample", stream=io.StringIO(), heartbeat=False)
    progress.within(64)  # a quarter of the first 256-sample batch denoised
    line = progress.line()
    assert line.startswith("sampling: 0/512 samples (0.0 %, a batch under way)") and "samples/s" in line and "left" in line
    progress.update(256)
    assert "a batch under way" not in progress.line() and progress.line().startswith("sampling: 256/512")
    progress.close()
