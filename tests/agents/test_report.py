"""The HTML report, without a browser: one offline file, violations first, the data it embeds."""

from __future__ import annotations

import json

from ledger.audit import AuditResult, ChainRow, LeaseRow, RegionRow, RoundRow, Violation
from ledger.audit.report import LEASE_COLUMNS, render_report


def _lease(n: int, region: int, state: str) -> LeaseRow:
    return LeaseRow(
        region, f"0x{n:064x}", 7, 0, "0x" + "AB" * 20, "0x" + "cd" * 20, n, 1, 2, 420, 480,
        "2000000000", "0x00", "0x00", 3 + n, f"0x{n:064x}", state, 3 + n, f"0x{n:064x}",
    )  # fmt: skip


def _result() -> AuditResult:
    metrics = json.dumps({"round": 0, "loss": 1.5, "accuracy": 0.5, "epsilon": float("inf")})
    return AuditResult(
        violations=[
            Violation("overlap", "region-1", 12, "0x" + "ee" * 32, "0x01", "two <leases> overlap")
        ],
        leases=[_lease(1, 1, "active"), _lease(2, 1, "defaulted"), _lease(3, 2, "completed")],
        regions={r: RegionRow(("0x" + "11" * 20,), 1, 8, 1, 60, f"region-{r}") for r in (1, 2)},
        chains=[ChainRow("root", 1, 9, "0x" + "99" * 32)],
        rounds=[RoundRow(1, 0, 5, "0x05", "0x00", "0x00", metrics)],
    )


def test_violations_come_first_with_chain_block_and_transaction():
    page = render_report(_result())
    table = page[page.index('<table id="violations">') : page.index("</table>")]
    assert page.index('id="violations"') < page.index('id="leases"') < page.index('id="regions"')
    for cell in ("overlap", "region-1", "<td>12</td>", "0x" + "ee" * 32, "two &lt;leases&gt;"):
        assert cell in table, cell
    assert 'id="violation-q"' in page and 'id="lease-q"' in page


def test_the_page_is_offline_and_embeds_what_the_script_needs():
    page = render_report(_result())
    offline = page.replace("http://www.w3.org/2000/svg", "")
    assert "http://" not in offline and "https://" not in offline and "src=" not in offline
    raw = page.split('<script type="application/json" id="audit-data">')[1].split("</script>")[0]
    data = json.loads(raw.replace("<\\/", "</"))
    assert data["lease_columns"] == LEASE_COLUMNS
    assert len(data["leases"]) == 3 and data["leases"][0][LEASE_COLUMNS.index("kind")] == "spectrum"
    assert data["leases"][0][LEASE_COLUMNS.index("seller")] == "0x" + "ab" * 20  # searched as typed
    assert data["rounds"] == [
        {"round": 0, "loss": 1.5, "accuracy": 0.5, "delay_s": None, "energy_j": None,
         "epsilon": None}  # inf is not JSON: not plotted
    ]  # fmt: skip
    assert [r["epoch_length_s"] for r in data["regions"]] == [60, 60]


def test_a_clean_result_has_no_violation_table():
    result = _result()
    result.violations.clear()
    assert 'id="violations"' not in render_report(result)
