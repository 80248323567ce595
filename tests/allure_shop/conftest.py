"""Bad input beside good results: once the session ends, a result file that is not JSON is
written into the Allure results directory, as a crashed writer would leave it."""
import os


def pytest_sessionfinish(session):
    alluredir = session.config.getoption("allure_report_dir", None)
    if alluredir:
        with open(os.path.join(alluredir, "0000-truncated-result.json"), "w") as f:
            f.write('{"name": "test_cut_off", "status": "pass')
