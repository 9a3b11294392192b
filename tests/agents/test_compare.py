"""``specledger compare``: frozen books, run-level metrics, the replay through every mechanism."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

from agents.cli import main
from agents.errors import ExperimentError
from agents.experiments.books import BOOKS_FILE, BookLog, book_from_json, book_to_json, read_books
from agents.experiments.compare import (
    METRICS,
    compare_books,
    misreport_gain,
    write_compare,
)
from agents.experiments.metrics import (
    backlog_stats,
    default_rate,
    job_metrics,
    mean_interval,
    price_volatility,
    run_metrics,
)
from ledger.mechanisms import (
    MECHANISMS,
    Allocation,
    Book,
    DoubleAuction,
    SecondPrice,
    UnitDemandMechanism,
)
from ledger.mechanisms.second_price import uniform_price_auction
from tests.ledger.test_outcome import BUNDLED, UNIT

ROOT = Path(__file__).resolve().parents[2]


class FirstPrice(UnitDemandMechanism):
    """Winners of the uniform-price auction pay their own bids: not truthful."""

    name = "first_price"

    def allocate(self, book: Book) -> Allocation:
        awards = uniform_price_auction(book, 0, None)
        return Allocation(
            self.name, tuple(replace(a, price_wei=book.bids[a.bid].max_price_wei) for a in awards)
        )


class Broken(UnitDemandMechanism):
    name = "broken"

    def allocate(self, book: Book) -> Allocation:
        raise RuntimeError("no allocation today")


# -- frozen books ---------------------------------------------------------------------------
def test_a_book_survives_json_with_big_integers(tmp_path: Path):
    big = replace(UNIT.bids[0], max_price_wei=2**80 + 7)
    book = replace(BUNDLED, bids=(BUNDLED.bids[0], replace(BUNDLED.bids[1], max_price_wei=2**70)))
    book = replace(book, occupied_mask=2**1, sold_units=(0, 0), weights=(3, 1))
    assert book_from_json(json.loads(json.dumps(book_to_json(book)))) == book
    data = book_to_json(replace(UNIT, bids=(big, *UNIT.bids[1:])))
    assert data["bids"][0]["max_price_wei"] == str(2**80 + 7)  # ints as strings
    log = BookLog(tmp_path)
    log(UNIT)
    log(book)  # region 1 epoch 5 again: the later line wins
    with open(tmp_path / BOOKS_FILE, "a") as f:
        f.write('{"region": "1", "epo')  # a run killed mid-line
    assert read_books(tmp_path) == [book]


def test_a_broken_books_file_is_one_clear_error(tmp_path: Path):
    (tmp_path / BOOKS_FILE).write_text('{"region": "1"}\n{"region": "2"}\n')
    with pytest.raises(ExperimentError, match="line 1 is not a book"):
        read_books(tmp_path)
    with pytest.raises(ExperimentError, match="has no books.jsonl"):
        read_books(tmp_path / "nowhere")


# -- misreports -----------------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", [SecondPrice(), DoubleAuction()], ids=lambda m: m.name)
def test_truthful_mechanisms_admit_no_misreport_gain(mechanism):
    assert misreport_gain(mechanism, UNIT, range(len(UNIT.bids))) == 0


def test_the_search_finds_a_first_price_auction_s_gain():
    # UNIT: channels at 10, 10, 30; bids A 100, B 50, C 40, D 20; first price: A pays 100
    # (utility 0). Reporting 0.5 x 100 = 50 still wins (3 units, 50 >= the 3rd reserve):
    # gain 50; at 0.25 (25 < 30 with the other two ahead) A loses. B's best is 0.75
    # (37 -> gain 13), C's 0.75 (30 -> gain 10): the best over all is 50.
    assert misreport_gain(FirstPrice(), UNIT, [0]) == 50
    assert misreport_gain(FirstPrice(), UNIT, [1]) == 13
    assert misreport_gain(FirstPrice(), UNIT, [2]) == 10
    assert misreport_gain(FirstPrice(), UNIT, range(4)) == 50


# -- run-level metrics ----------------------------------------------------------------------
def test_mean_interval_is_student_t():
    xs = [0.2, 0.5, 0.9, 0.4, 0.7]
    got = mean_interval([*xs, math.nan])  # NaN: left out
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert (got.n, got.mean) == (5, pytest.approx(0.54))
    assert (got.lo, got.hi) == (pytest.approx(lo), pytest.approx(hi))
    one = mean_interval([3.0])
    assert one.mean == 3.0 and math.isnan(one.lo) and math.isnan(one.hi)
    assert mean_interval([]).n == 0


def test_volatility_backlog_defaults_and_the_job():
    # prices 1, 2, 3 (and an epoch without trade): σ = sqrt(2/3), μ = 2
    assert price_volatility([1, 0, 2, 3]) == pytest.approx(math.sqrt(2 / 3) / 2)
    assert math.isnan(price_volatility([0, 0]))
    assert default_rate(3, 12) == 0.25 and math.isnan(default_rate(0, 0))
    # a backlog growing by 2 an epoch: slope 2; p95 of 0..20 step 2 = 19 (interpolated)
    grown = backlog_stats([2 * k for k in range(11)])
    assert grown == {
        "backlog_mean": pytest.approx(10.0),
        "backlog_p95": pytest.approx(19.0),
        "backlog_slope": pytest.approx(2.0),
    }
    assert backlog_stats([5, 5, 5])["backlog_slope"] == pytest.approx(0.0)
    rounds = [
        {"accuracy": 0.5, "epsilon": 2.0, "delay_s": 1.0, "devices": 2, "queue_s": 0.0},
        {"accuracy": 0.6, "epsilon": 3.0, "delay_s": 3.0, "devices": 4, "queue_s": 1.0},
        {
            "accuracy": 0.7,
            "epsilon": 3.5,
            "delay_s": 2.0,
            "devices": 3,
            "queue_s": 1.0,
            "received_snr_db": -40.0,
        },
        {
            "accuracy": 0.8,
            "epsilon": 3.9,
            "delay_s": 2.0,
            "devices": 3,
            "queue_s": 2.0,
            "received_snr_db": -38.0,
        },
    ]
    assert job_metrics(rounds, 2.0) == {
        "accuracy": 0.8,
        "epsilon": 3.9,
        "delay_s": 2.0,
        "delay_over_budget": 1.0,
        "received_snr_db": pytest.approx(-39.0),  # over the rounds that report it
        "queue_s_mean": pytest.approx(1.0),
        "accuracy_last3": pytest.approx(0.7),
        "devices_mean": pytest.approx(3.0),
    }


def test_run_metrics_read_a_run_directory(tmp_path: Path):
    rows = [
        # epoch, region, price, leases, defaults, note, backlog
        (0, 1, 100, 4, 0, "", 3),
        (0, 2, 50, 2, 1, "", 1),
        (1, 1, 300, 4, 1, "", 6),
        (1, 2, 0, 0, 0, "region is down (outage)", 2),
        (2, 1, 200, 2, 0, "", 9),
        (2, 2, 150, 4, 0, "", 2),
    ]
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        head = ["kind", "epoch", "region", "clearing_price_wei", "leases", "defaults"]
        w.writerow([*head, "note", "backlog"])
        for r in rows:
            w.writerow(["region", *r])
        w.writerow(["round", 0, "", "", "", "", "", ""])
    (tmp_path / "rounds.jsonl").write_text(
        '{"accuracy": 0.6, "epsilon": 4.0, "delay_s": 3.0}\n'
        '{"accuracy": 0.8, "epsilon": 6.0, "delay_s": 1.0}\n'
    )
    (tmp_path / "scenario.toml").write_text("[job]\ndelay_budget_s = 4.0\n")
    got = run_metrics(tmp_path)
    # region 1: prices 100, 300, 200 -> σ/μ = sqrt(20000/3)/200; region 2: 50, 150
    # (the outage row is no price) -> 50/100; their mean
    vol = (math.sqrt(20000 / 3) / 200 + 0.5) / 2
    assert got["price_volatility"] == pytest.approx(vol)
    assert got["default_rate"] == pytest.approx(2 / 16)
    # backlog per epoch 4, 8, 11: mean 23/3, slope 3.5
    assert got["backlog_mean"] == pytest.approx(23 / 3)
    assert got["backlog_slope"] == pytest.approx(3.5)
    assert (got["accuracy"], got["epsilon"], got["delay_over_budget"]) == (0.8, 6.0, 0.5)


# -- the replay -----------------------------------------------------------------------------
def test_compare_rows_on_hand_books(tmp_path: Path):
    rows = {r["mechanism"]: r for r in compare_books([UNIT, BUNDLED])}
    assert list(rows) == [MECHANISMS[i].name for i in sorted(MECHANISMS)]
    # second_price: UNIT efficient (1.0); BUNDLED: the 2-channel bid is not of its shape,
    # the compute bid wins its unit for 5 — half a bundle, worth nothing: -5 / 75
    sp = rows["second_price"]
    effs = [1.0, -5 / 75]
    lo, hi = stats.t.interval(0.95, 1, loc=np.mean(effs), scale=stats.sem(effs))
    assert sp["efficiency"] == pytest.approx(np.mean(effs))
    assert (sp["efficiency_lo"], sp["efficiency_hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert sp["optimum_wei"] == pytest.approx((140 + 75) / 2)
    assert sp["revenue_wei"] == pytest.approx((90 + 5) / 2)
    assert sp["misreport_gain_wei"] == 0 and sp["misreport_trials"] > 0
    assert sp["note"] == "left out 1 of 6 bids (not of its shape: it takes unit bids)"
    # bundle: nothing on UNIT (no bundles: efficiency 0), all of BUNDLED (1.0)
    bundle = rows["bundle"]
    assert bundle["efficiency"] == pytest.approx(0.5)
    assert bundle["note"].startswith("left out 4 of 6 bids (not bundled")
    assert bundle["misreport_gain_wei"] == ""  # probed for second_price, double_auction
    assert rows["double_auction"]["misreport_gain_wei"] == 0
    path = write_compare(list(rows.values()), tmp_path)
    with open(path, newline="") as f:
        table = list(csv.DictReader(f))
    for m in METRICS:
        assert {m, f"{m}_lo", f"{m}_hi"} <= set(table[0])
    assert table[0]["optimum_wei"] == str(round((140 + 75) / 2))


def test_a_mechanism_that_fails_is_a_note_not_a_crash():
    (row,) = compare_books([UNIT, BUNDLED], [Broken()])
    assert row["books"] == 0
    assert "failed on 2 book(s), first region 1 epoch 5: RuntimeError" in row["note"]
    assert math.isnan(row["efficiency"])


# -- the command ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "1,x"], "expected seeds like 1,2,3"),
        (["--seeds", "2,2"], "distinct seeds"),
        (["--epochs", "0"], "--epochs"),
    ],
    ids=["not-a-seed", "twice", "no-epochs"],
)
def test_bad_options_are_one_line(tmp_path: Path, args, message):
    scenario = str(ROOT / "examples" / "quickstart.toml")
    result = CliRunner().invoke(main, ["compare", scenario, "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output


def test_an_out_folder_with_other_files_is_refused(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("mine")
    scenario = str(ROOT / "examples" / "quickstart.toml")
    result = CliRunner().invoke(main, ["compare", scenario, "--out", str(tmp_path)])
    assert result.exit_code == 2 and "holds other files (notes.txt)" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = 1\n")
    result = CliRunner().invoke(main, ["compare", str(bad), "--out", str(tmp_path / "new")])
    assert result.exit_code == 1 and "error:" in result.output


@pytest.mark.slow
def test_compare_the_quickstart(tmp_path: Path):
    out = tmp_path / "cmp"
    args = ["compare", str(ROOT / "examples" / "quickstart.toml"), "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    with open(out / "compare.csv", newline="") as f:
        table = {r["mechanism"]: r for r in csv.DictReader(f)}
    assert set(table) == {m.name for m in MECHANISMS.values()}
    books = read_books(out / "runs" / "seed-7")
    assert len(books) == 3 * 2  # three regions, two epochs
    # the table's means are the books' own figures, recomputed here per book
    from ledger.mechanisms import evaluate, optimal_welfare

    optima = [optimal_welfare(b).welfare_wei for b in books]
    assert float(table["second_price"]["optimum_wei"]) == pytest.approx(np.mean(optima), abs=1)
    for name in ("second_price", "double_auction"):
        assert table[name]["misreport_gain_wei"] == "0"
    for row in table.values():
        assert float(row["welfare_wei"]) <= float(row["optimum_wei"]) + 1
    pf = [evaluate(b, MECHANISMS[2]().allocate(b), o) for b, o in zip(books, optima, strict=True)]
    assert float(table["proportional_fair"]["utilisation"]) == pytest.approx(
        np.mean([o.utilisation for o in pf]), rel=1e-5
    )
    # the same command again keeps the run and gives the same table
    before = (out / "compare.csv").read_text()
    again = CliRunner().invoke(main, [*args, "--epochs", "2"])
    assert again.exit_code == 0, again.output
    assert (out / "compare.csv").read_text() == before
    assert "second_price" in again.output
