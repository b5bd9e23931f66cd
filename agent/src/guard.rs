//! Who may talk to the agent: the `Host` and `Origin` checks every request passes first.
//!
//! * **Host** (DNS rebinding): a page served by `evil.example` that makes its own name
//!   resolve to 127.0.0.1 reaches the agent with `Host: evil.example`. Only the names the
//!   agent is reached by are accepted: `localhost`, `127.0.0.1`, `[::1]` and the bound address,
//!   with the bound port or without one. A request without `Host` (HTTP/1.0 tools) is accepted.
//! * **Origin** (cross-site requests): a browser on the same machine can be made to POST to
//!   127.0.0.1 by any page (a "simple" request needs no preflight), and to open a WebSocket to
//!   it (WebSockets know no same-origin policy). A request that changes something (any method
//!   but GET and HEAD), and a WebSocket handshake, carrying an `Origin` is accepted only from
//!   the agent's own origin (`http://`, or `https://` with TLS, + an accepted host). Tools
//!   (curl, Prometheus, the bindings' HTTP clients) send no `Origin`. (Server-Sent Events need
//!   no check: a foreign page cannot read them without CORS headers, which the agent never
//!   sends.)
//!
//! * **Token** (who may change things): once a bearer token is configured, a change needs
//!   `Authorization: Bearer <token>` (401 otherwise), compared in constant time; the token is
//!   never logged or echoed. Without a token, changes are refused on an agent bound to anything
//!   but loopback (403): binding elsewhere without a token exposes only what can be read.
//!
//! Refusals are RFC 9457 problems (403, or 401 with `WWW-Authenticate: Bearer`) that say which
//! check failed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::problem;

/// A bearer token. Its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Token(Arc<[u8]>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    pub(crate) fn new(secret: &str) -> Self {
        Token(secret.trim().as_bytes().into())
    }

    /// Whether `presented` is the token, in time that depends on their lengths only.
    fn matches(&self, presented: &[u8]) -> bool {
        let (a, b) = (&*self.0, presented);
        let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
        for i in 0..a.len().max(b.len()) {
            diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
        }
        diff == 0
    }
}

/// What a change (any method but GET and HEAD) must show.
#[derive(Clone, Debug)]
pub(crate) enum Changes {
    /// Loopback bind, no token: the Host and Origin checks are enough.
    Open,
    /// A bearer token is required.
    Token(Token),
    /// Bound beyond loopback without a token: no changes at all.
    Refused,
}

impl Changes {
    pub(crate) fn for_bind(addr: SocketAddr, token: Option<Token>) -> Self {
        match token {
            Some(t) => Changes::Token(t),
            None if addr.ip().is_loopback() => Changes::Open,
            None => Changes::Refused,
        }
    }

    /// How the dashboard is told: `open`, `token` or `refused`.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Changes::Open => "open",
            Changes::Token(_) => "token",
            Changes::Refused => "refused",
        }
    }

    /// `None` when the change may go ahead, else the refusal.
    fn refusal(&self, authorization: Option<&[u8]>) -> Option<Response> {
        match self {
            Changes::Open => None,
            Changes::Refused => Some(problem(
                StatusCode::FORBIDDEN,
                "changes are refused: the agent is bound beyond loopback without a token \
                 (set SURGEWALL_AGENT_TOKEN or the builder's token)",
            )),
            Changes::Token(t) => {
                let presented = authorization.and_then(|h| h.strip_prefix(b"Bearer "));
                if presented.is_some_and(|p| t.matches(p)) {
                    return None;
                }
                let mut r = problem(
                    StatusCode::UNAUTHORIZED,
                    "a change needs Authorization: Bearer <the agent's token>",
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                Some(r)
            }
        }
    }
}

/// What the middleware checks against.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    pub(crate) hosts: Hosts,
    pub(crate) changes: Changes,
    /// Served over TLS: the agent's own origin is `https://`.
    pub(crate) tls: bool,
}

/// The `host:port` values requests may name.
#[derive(Clone, Debug)]
pub(crate) struct Hosts(Arc<Vec<String>>);

impl Hosts {
    /// The loopback names and the bound address, each with the bound port and bare.
    pub(crate) fn for_addr(addr: SocketAddr) -> Self {
        let port = addr.port();
        let ip = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        let mut hosts = Vec::new();
        for name in ["localhost", "127.0.0.1", "[::1]", &ip] {
            hosts.push(name.to_owned());
            hosts.push(format!("{name}:{port}"));
        }
        hosts.sort();
        hosts.dedup();
        Hosts(Arc::new(hosts))
    }

    fn allows(&self, host: &str) -> bool {
        self.0.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// The middleware: refuses a foreign `Host`, a cross-site `Origin` on a change, and a change
/// without the token (or any change, bound beyond loopback without one).
pub(crate) async fn check(State(policy): State<Policy>, req: Request, next: Next) -> Response {
    let hosts = &policy.hosts;
    let headers = req.headers();
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or(""));
    if let Some(host) = host {
        if !hosts.allows(host) {
            return problem(
                StatusCode::FORBIDDEN,
                format!("Host {host:?} is not a name of this agent (DNS rebinding?)"),
            );
        }
    }
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    let websocket = headers
        .get(header::UPGRADE)
        .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if let (true, Some(origin)) = (changes || websocket, headers.get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or("");
        let scheme = if policy.tls { "https://" } else { "http://" };
        let own = origin
            .strip_prefix(scheme)
            .is_some_and(|rest| hosts.allows(rest));
        if !own {
            let what = if websocket {
                "WebSocket"
            } else {
                req.method().as_str()
            };
            return problem(
                StatusCode::FORBIDDEN,
                format!("a {what} from origin {origin:?} is refused: only this agent's own pages may do that"),
            );
        }
    }
    if changes {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if let Some(refusal) = policy.changes.refusal(authorization) {
            return refusal;
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_matches_only_itself() {
        let t = Token::new("s3cret\n"); // read from a file: the newline is not part of it
        assert!(t.matches(b"s3cret"));
        for wrong in [
            &b""[..],
            b"s3cre",
            b"s3crett",
            b"S3cret",
            b"s3cret\n",
            b"s3cre\xff",
        ] {
            assert!(!t.matches(wrong), "{wrong:?}");
        }
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }

    #[test]
    fn changes_beyond_loopback_need_a_token() {
        let lo: SocketAddr = "127.0.0.1:9464".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9464".parse().unwrap();
        assert!(Changes::for_bind(lo, None).refusal(None).is_none());
        let refused = Changes::for_bind(any, None)
            .refusal(Some(b"Bearer x"))
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let with = Changes::for_bind(any, Some(Token::new("x")));
        assert!(with.refusal(Some(b"Bearer x")).is_none());
        let denied = with.refusal(Some(b"Bearer y")).unwrap();
        assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(denied.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            with.refusal(None).unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            with.refusal(Some(b"x")).unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
}
