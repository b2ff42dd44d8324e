"""The HTML leaderboard in a real headless Chromium: table, sorting, ε selector, escaping."""

import shutil

import pytest

from dparena.harness.store import StoredRun, StoredValue
from dparena.leaderboard.aggregate import build_tables
from dparena.leaderboard.render import to_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="Chromium is not installed (Debian packages chromium and chromium-driver; .ci/run installs them)",
)

EVIL = "<script>window.__pwned = 1</script>"


def _run(label, eps, seed, value, status="ok"):
    return StoredRun(
        key=f"{label}-{eps}-{seed}", dataset="toy", dataset_version="1", method=label,
        label=label, epsilon=eps, delta=1e-5, seed=seed, status=status,
        error="over budget" if status == "invalid" else "",
        spent_epsilon=eps if eps is not None else float("inf"), spec={"metrics": ["m"]},
        metrics={"m": StoredValue("m", "m", value)})


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--disable-sync"):
        options.add_argument(arg)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_leaderboard_page(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    runs = [_run("alpha", 1.0, s, 0.5 + s / 100) for s in range(2)]
    runs += [_run("beta", 1.0, s, 0.7) for s in range(2)]
    runs += [_run(EVIL, 1.0, 0, 0.6), _run("over", 1.0, 0, 0.99, status="invalid")]
    runs += [_run("alpha", 10.0, 0, 0.8), _run("real", None, 0, 0.95)]
    page = tmp_path / "leaderboard.html"
    page.write_text(to_html(build_tables(runs)))
    browser.get(page.as_uri())

    sections = browser.find_elements(By.CSS_SELECTOR, "section.board")
    assert len(sections) == 2
    first = sections[0]
    labels = [r.find_element(By.TAG_NAME, "td").text for r in first.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert labels[0].startswith("beta")  # ranked first by the metric
    # the script-like method name is shown as text and never executed
    assert any(EVIL in text for text in labels)
    assert browser.execute_script("return window.__pwned === undefined")
    assert any("INVALID" in t for t in labels) and any("non-private reference" in t for t in labels)
    # hovering a cell shows n and the CI
    cell = first.find_elements(By.CSS_SELECTOR, "tbody tr")[0].find_elements(By.TAG_NAME, "td")[1]
    assert "n=2" in cell.get_attribute("title") and "95% CI" in cell.get_attribute("title")

    # sort by the metric column: ascending, then descending
    header = first.find_elements(By.TAG_NAME, "th")[1]
    header.click()

    def values():
        return [c.get_attribute("data-v") for c in
                first.find_elements(By.CSS_SELECTOR, "tbody tr td:nth-child(2)")]

    asc = [float(v) for v in values() if v]
    assert asc == sorted(asc)
    header.click()
    desc = [float(v) for v in values() if v]
    assert desc == sorted(desc, reverse=True)

    # the ε selector hides the other tables
    Select(browser.find_element(By.ID, "eps-select")).select_by_visible_text("10")
    visible = [s.get_attribute("data-eps") for s in browser.find_elements(By.CSS_SELECTOR, "section.board")
               if s.is_displayed()]
    assert visible == ["10"]
