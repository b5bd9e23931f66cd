//! Static fallback payloads: what a caller serves when a breaker rejects.
//!
//! A [`Fallback`] is an immutable body plus a content type (a JSON error document, a cached
//! page, an empty list ...), attached to a breaker with
//! [`BreakerBuilder::fallback`](crate::BreakerBuilder::fallback) and read with
//! [`Breaker::fallback`](crate::Breaker::fallback). Core keeps only the payload; the bindings add
//! fallback *functions* in each language's own way. The body is reference counted, so cloning a
//! fallback (or handing it to another thread) never copies the bytes.
//!
//! ```
//! use surgewall::{Breaker, BreakerConfig, Fallback};
//!
//! let breaker = Breaker::builder("quotes", BreakerConfig::default())
//!     .fallback(Fallback::json(r#"{"error":"quotes unavailable","retry":true}"#))
//!     .build();
//! breaker.force_open(None);
//! if breaker.acquire().is_err() {
//!     let fb = breaker.fallback().expect("configured");
//!     assert_eq!(fb.content_type(), "application/json");
//!     assert!(fb.body().starts_with(b"{\"error\""));
//! }
//! ```

use std::fmt;
use std::sync::Arc;

/// An immutable payload (bytes and a content type) served when a call is rejected.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fallback {
    content_type: Arc<str>,
    body: Arc<[u8]>,
}

impl Fallback {
    /// A payload with the given content type (a MIME type such as `text/plain; charset=utf-8`).
    ///
    /// ```
    /// let fb = surgewall::Fallback::new("text/plain", "try again later");
    /// assert_eq!(fb.body(), b"try again later");
    /// assert_eq!(fb.len(), 15);
    /// ```
    pub fn new(content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        Self {
            content_type: Arc::from(content_type.into()),
            body: Arc::from(body.into()),
        }
    }

    /// A JSON payload (`application/json`).
    ///
    /// ```
    /// let fb = surgewall::Fallback::json("[]");
    /// assert_eq!((fb.content_type(), fb.body()), ("application/json", &b"[]"[..]));
    /// ```
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Self::new("application/json", body)
    }

    /// The content type.
    ///
    /// ```
    /// assert_eq!(surgewall::Fallback::new("text/html", "<p>down</p>").content_type(), "text/html");
    /// ```
    pub fn content_type(&self) -> &str {
        &self.content_type
    }

    /// The body bytes (a C caller gets a pointer and [`len`](Self::len)).
    ///
    /// ```
    /// assert!(surgewall::Fallback::json("").body().is_empty());
    /// ```
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body length in bytes.
    ///
    /// ```
    /// assert_eq!(surgewall::Fallback::json("{}").len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether the body is empty.
    ///
    /// ```
    /// assert!(surgewall::Fallback::new("text/plain", "").is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }
}

impl fmt::Debug for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fallback")
            .field("content_type", &&*self.content_type)
            .field("len", &self.body.len())
            .finish()
    }
}

#[cfg(all(test, not(surgewall_loom)))]
mod tests {
    use super::*;
    use crate::{Breaker, BreakerConfig};

    #[test]
    fn a_breaker_without_a_fallback_has_none() {
        let b = Breaker::new("plain", BreakerConfig::default());
        assert!(b.fallback().is_none());
    }

    #[test]
    fn the_fallback_is_shared_not_copied() {
        let fb = Fallback::new("application/octet-stream", vec![1u8, 2, 3]);
        let b = Breaker::builder("bin", BreakerConfig::default())
            .fallback(fb.clone())
            .build();
        let got = b.fallback().unwrap();
        assert_eq!(got, &fb);
        assert!(std::ptr::eq(got.body().as_ptr(), fb.body().as_ptr()));
        assert_eq!(
            format!("{got:?}"),
            r#"Fallback { content_type: "application/octet-stream", len: 3 }"#
        );
    }
}
