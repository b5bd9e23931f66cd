//! The dashboard: `GET /` serves one self-contained page (`dashboard.html`: HTML, CSS and
//! JavaScript inline, nothing fetched from elsewhere, no build step).
//!
//! The page reads the agent's live stream when the OpenAPI document lists it (WebSocket, then
//! Server-Sent Events) and otherwise polls the REST API every 500 ms; its buttons call the
//! REST API's `reset`, `force-open` and `disable`, with the bearer token the operator typed in
//! (kept in the tab's `sessionStorage`) when the agent needs one.
//!
//! The page is served with a Content-Security-Policy that lets it talk to its own origin only
//! and forbids framing (no clickjacking of its buttons).

use axum::http::header;
use axum::response::IntoResponse;

/// The page, compiled into the agent.
const PAGE: &str = include_str!("dashboard.html");

/// What the page may do: its own inline script and style, requests to its own origin, nothing
/// else; no framing by other sites.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the dashboard page.
pub(crate) async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained() {
        // No build step and no CDN: nothing is loaded from another origin.
        for outside in [
            "http://",
            "https://",
            "//cdn",
            "<script src",
            "<link rel=\"stylesheet\"",
        ] {
            assert!(!PAGE.contains(outside), "the page names {outside:?}");
        }
        assert!(PAGE.starts_with("<!doctype html>"));
    }
}
