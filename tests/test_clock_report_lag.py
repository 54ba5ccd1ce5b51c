"""benchmarks/clock_report_lag.py on a record made here: a run at a steady pace whose evaluations fall every tenth of
its steps. Timed from its last report, the time to go is exact at every moment; timed from now, it is too long
between reports (a check that can fail: were the two clocks the same, or the replay's placing of evaluations
wrong, the factors would not split this way)."""
from scripts import load_script


def _record(wall: float = 600.0, setup: float = 0.0) -> dict:
    curve = [{"step": step} for step in range(0, 101, 10)]
    return {"wall_time": wall, "time_setup": setup, "time_test": 0.0, "total_steps": 100, "curve": curve}


def test_timed_from_its_report_the_time_to_go_is_exact_and_from_now_too_long():
    old, new = load_script("clock_report_lag").factors(_record())
    assert len(old) == len(new) == 18                    # every 30 s from the first report (60 s) to 570 s
    assert all(abs(f - 1.0) < 1e-9 for f in new)
    assert all(f >= 1.0 - 1e-9 for f in old) and max(old) > 1.5   # between reports the old clock reads the pace low


def test_a_run_that_ends_before_its_first_report_gives_no_times():
    record = _record(wall=20.0)
    assert load_script("clock_report_lag").factors(record) == ([], [])
