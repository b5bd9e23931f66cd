//! Who may talk to the agent: the `Host` and `Origin` checks every request passes first.
//!
//! * **Host** (DNS rebinding): a page served by `evil.example` that makes its own name
//!   resolve to 127.0.0.1 reaches the agent with `Host: evil.example`. Only the names the
//!   agent is reached by are accepted: `localhost`, `127.0.0.1`, `[::1]` and the bound address,
//!   with the bound port or without one. A request without `Host` (HTTP/1.0 tools) is accepted.
//! * **Origin** (cross-site requests): a browser on the same machine can be made to POST to
//!   127.0.0.1 by any page (a "simple" request needs no preflight). A request that changes
//!   something (any method but GET and HEAD) carrying an `Origin` is accepted only from the
//!   agent's own origin (`http://` + an accepted host). Tools (curl, Prometheus, the bindings'
//!   HTTP clients) send no `Origin`.
//!
//! Refusals are RFC 9457 problems with status 403 that say which check failed.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::problem;

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

/// The middleware: refuses a foreign `Host`, and a cross-site `Origin` on a change.
pub(crate) async fn check(State(hosts): State<Hosts>, req: Request, next: Next) -> Response {
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
    if let (true, Some(origin)) = (changes, headers.get(header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or("");
        let own = origin
            .strip_prefix("http://")
            .is_some_and(|rest| hosts.allows(rest));
        if !own {
            return problem(
                StatusCode::FORBIDDEN,
                format!("a {} from origin {origin:?} is refused: only this agent's own pages may change state", req.method()),
            );
        }
    }
    next.run(req).await
}
