//! Allure results of a `process` service, end to end: the real `tomato serve` runs a real
//! pytest suite with allure-pytest (tests/allure_shop) that writes Allure results and no JUnit;
//! its tests, steps, parameters, labels and attachments appear in the tests API and on the run
//! page, the failure screenshot is served as an image, an attachment over the service's limit
//! and a result file that is not JSON are refused with notes and nothing else is lost.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{Server, allure_shop_config};

const RUN: Duration = Duration::from_secs(120);

fn test<'a>(tests: &'a [Value], id: &str) -> &'a Value {
    tests
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no test {id} in {tests:#?}"))
}

#[tokio::test]
async fn allure_results_of_a_process_service_show_steps_parameters_and_the_failure_screenshot() {
    let config = allure_shop_config();
    let server = Server::start_with(Some(config.path()), &[]).await;
    let id = server.run_now("service=allure-shop&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(st["phase"], "Failed", "{st:#}\n{}", server.log());

    // Read from Allure results alone: the rerun selected the failed test by its pytest id.
    let attempts = st["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{st:#}");
    assert_eq!(
        attempts[1]["selection"]["tests"],
        serde_json::json!(["tests/test_shop.py::TestCheckout::test_declined_card"])
    );
    assert_eq!(attempts[1]["summary"]["total"], 1, "{st:#}");
    assert_eq!(
        st["summary"]["total"], 4,
        "the truncated result file is no test: {st:#}"
    );

    let (code, tests) = server.get(&format!("/api/v1/runs/{id}/tests")).await;
    assert_eq!(code, 200, "{tests}");
    let tests = tests.as_array().unwrap().clone();
    assert_eq!(tests.len(), 4, "{tests:#?}");

    let total = test(&tests, "tests/test_shop.py::test_total[3]");
    assert_eq!(total["verdict"], "passed");
    assert_eq!(
        total["parameters"],
        serde_json::json!([{"name": "qty", "value": "3"}])
    );
    assert_eq!(total["labels"]["feature"], "cart");
    assert_eq!(total["labels"]["severity"], "critical");
    let step = &total["steps"][0];
    assert_eq!(
        (step["name"].as_str(), step["status"].as_str()),
        (Some("add 3 items"), Some("passed"))
    );
    let inner: Vec<&str> = step["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(inner, ["open the cart", "check the total"]);
    assert!(step["durationMs"].is_u64(), "{step}");

    let declined = test(&tests, "tests/test_shop.py::TestCheckout::test_declined_card");
    assert_eq!(declined["verdict"], "failed");
    // `@allure.title` renamed it: its id and rerun are still pytest's, its title kept apart.
    assert_eq!(declined["title"], "A declined card is refused");
    assert!(
        declined["message"]
            .as_str()
            .unwrap()
            .starts_with("AssertionError: the payment was declined")
    );
    assert_eq!(declined["labels"]["owner"], "payments-team");
    let shot = &declined["attachments"][0];
    assert_eq!(
        (shot["name"].as_str(), shot["image"].as_bool()),
        (Some("failure screenshot"), Some(true))
    );
    assert_eq!(shot["contentType"], "image/png");
    // The extras are those of the attempt that explains the verdict: the last, here.
    let url = shot["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("/api/v1/runs/{id}/attempts/2/attachments/")),
        "{url}"
    );
    let r = server
        .client
        .get(format!("{}{url}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let png = r.bytes().await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a real PNG");
    let log = &declined["steps"][0]["attachments"][0];
    assert_eq!(
        (log["name"].as_str(), log["contentType"].as_str()),
        (Some("server log"), Some("text/plain; charset=utf-8"))
    );
    let r = server
        .client
        .get(format!("{}{}", server.url, log["url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=")
    );
    assert_eq!(r.text().await.unwrap(), "POST /pay -> 402 card_declined");

    // Over the per-test limit: refused with a note, its file not kept, the test still passed.
    let receipt = test(&tests, "tests/test_shop.py::TestCheckout::test_receipt_download");
    assert_eq!(receipt["verdict"], "passed");
    let big = &receipt["steps"][0]["attachments"][0];
    assert!(big["url"].is_null(), "{big}");
    assert!(
        big["refused"]
            .as_str()
            .unwrap()
            .contains("over the limit of 64.0 KB of attachments per test"),
        "{big}"
    );

    // Names are never paths, and only kept files are served.
    for bad in [
        "..%2F..%2Fsecrets",
        "..",
        "%2Fetc%2Fpasswd",
        ".allure.json",
        "nope-attachment.png",
    ] {
        let (code, body) = server
            .get(&format!("/api/v1/runs/{id}/attempts/1/attachments/{bad}"))
            .await;
        assert_eq!(code, 404, "{bad}: {body}");
    }
    let attempt1 = server.data_dir.join(format!("runs/{id}/attempt-1"));
    let refused_source = std::fs::read_to_string(attempt1.join("allure.json")).unwrap();
    assert!(refused_source.contains("refused"));

    // The run page: steps with status and duration, parameters, the screenshot inline at the
    // top of the failed test, other files as links, the refusal and the bad file's note.
    let (code, page) = server.get_text(&format!("/runs/{id}")).await;
    assert_eq!(code, 200, "{page}\n{}", server.log());
    let page = page.replace("&#x2f;", "/");
    assert!(
        page.contains(&format!("<figure class=\"failure-shot\"><a href=\"{url}\"")),
        "{page}"
    );
    assert!(
        page.contains("add 3 items") && page.contains("open the cart"),
        "{page}"
    );
    assert!(page.contains("<dt>qty</dt><dd class=\"mono\">3</dd>"), "{page}");
    // `@allure.title` renamed it in Allure: one test with its JUnit twin, its title shown.
    assert!(
        page.contains("<div class=\"allure-title\">A declined card is refused</div>"),
        "{page}"
    );
    assert!(page.contains(">server log</a>"), "{page}");
    assert!(page.contains("receipt.bin: not kept"), "{page}");
    assert!(page.contains("0000-truncated-result.json: not JSON"), "{page}");
}

/// A sharded attempt's shards write Allure results each; their extras are gathered into the
/// attempt's record, so the run page and the tests API show them as for an unsplit attempt.
#[tokio::test]
async fn a_sharded_attempts_allure_results_are_gathered_from_its_shards() {
    let config = allure_shop_config();
    let sharded = include_str!("allure_shop/service.yaml")
        // Two shards need two slots of the service and of the stand.
        .replace("retries: 1\n", "retries: 0\nshards: 2\nconcurrency: 2\n")
        .replace("  pattern: 'localhost'\n", "  pattern: 'localhost'\n  concurrency: 2\n")
        .replace(
            "packs:\n  shop:\n    description: Cart and checkout\n    tests: [\"{dir}/tests\"]\n",
            "packs:\n  cart:\n    tests: [\"{dir}/tests/test_shop.py::test_total\"]\n  checkout:\n    tests: [\"{dir}/tests/test_shop.py::TestCheckout\"]\n",
        );
    assert!(
        sharded.contains("shards: 2") && sharded.contains("checkout:"),
        "{sharded}"
    );
    std::fs::write(config.path().join("allure-shop.yaml"), sharded).unwrap();
    let server = Server::start_with(Some(config.path()), &[]).await;
    let id = server.run_now("service=allure-shop&stand=localhost").await;
    let st = server.wait_finished(&id, RUN).await;
    assert_eq!(
        st["attempts"][0]["shards"].as_array().map(Vec::len),
        Some(2),
        "{st:#}"
    );
    assert_eq!(st["summary"]["total"], 4, "{st:#}");
    let (_, tests) = server.get(&format!("/api/v1/runs/{id}/tests")).await;
    let tests = tests.as_array().unwrap().clone();
    assert_eq!(
        test(&tests, "tests/test_shop.py::test_total[1]")["steps"][0]["name"],
        "add 1 items"
    );
    let declined = test(&tests, "tests/test_shop.py::TestCheckout::test_declined_card");
    let url = declined["attachments"][0]["url"].as_str().unwrap();
    let r = server
        .client
        .get(format!("{}{url}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
}
