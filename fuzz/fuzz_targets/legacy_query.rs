//! The legacy handles' parameters (query string plus a form or JSON body, as old clients
//! send them) are parsed or refused with a 400 (a 413 for a body over the limit), never a panic.
#![no_main]

use axum::extract::FromRequest;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str, &[u8])| {
    let (query, content_type, body) = input;
    let Ok(req) = Request::builder()
        .uri(format!("/api/run_now?{query}"))
        .method("POST")
        .header("content-type", content_type)
        .body(axum::body::Body::from(body.to_vec()))
    else {
        return; // not a request hyper would hand over
    };
    let parsed = futures::executor::block_on(tomato::api::Params::from_request(req, &()));
    if let Err(e) = parsed {
        // Refused as bad input, or (a body over the limit) as too large; never a 5xx.
        assert!(matches!(e.status.as_u16(), 400 | 413), "{}", e.status);
    }
});
