//! The UI's stylesheet and script, compiled into the binary and served from `/ui/static/`.
//!
//! Hand-written, no build step, nothing fetched from elsewhere. Pages link them with a
//! content hash in the query (`app.js?v=…`), so a browser may cache them for good and still
//! gets the new file after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");

static VERSION: LazyLock<String> = LazyLock::new(|| {
    // FNV-1a over both files: changes whenever either does.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in CSS.bytes().chain(JS.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
});

/// The content hash pages put in asset URLs.
pub fn version() -> &'static str {
    &VERSION
}

pub async fn static_file(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "app.css" => (CSS, "text/css; charset=utf-8"),
        "app.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
