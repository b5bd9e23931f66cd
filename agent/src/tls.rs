//! Optional TLS for the admin port (rustls, the `ring` provider): a certificate chain and its
//! private key, read from PEM once at start.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A certificate chain and private key for the admin port (see
/// [`AgentBuilder::tls`](crate::AgentBuilder::tls)).
///
/// ```no_run
/// use surgewall_agent::{Agent, Tls};
///
/// let tls = Tls::from_pem_files("/etc/surgewall/admin.crt", "/etc/surgewall/admin.key")?;
/// let agent = Agent::builder().tls(tls).start()?;
/// println!("https://{}/", agent.local_addr());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Tls(Arc<ServerConfig>);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

/// Why a certificate or key was refused: says which file or part, never the key's bytes.
#[derive(Debug)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl Tls {
    /// Reads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1) from files.
    pub fn from_pem_files(
        cert_chain: impl AsRef<std::path::Path>,
        private_key: impl AsRef<std::path::Path>,
    ) -> Result<Self, TlsError> {
        let read = |p: &std::path::Path, what: &str| {
            std::fs::read(p)
                .map_err(|e| TlsError(format!("cannot read the {what} file {}: {e}", p.display())))
        };
        let certs = read(cert_chain.as_ref(), "certificate")?;
        let key = read(private_key.as_ref(), "private key")?;
        Self::from_pem(&certs, &key)
    }

    /// The same, from PEM bytes in memory.
    pub fn from_pem(cert_chain: &[u8], private_key: &[u8]) -> Result<Self, TlsError> {
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError(format!("the certificate chain is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError(
                "the certificate chain holds no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(private_key)
            .map_err(|e| TlsError(format!("no usable private key in the key PEM: {e}")))?;
        // ring, not aws-lc-rs: no C toolchain (cmake, nasm) needed to build the agent. What it
        // lacks is post-quantum key exchange, which rustls now flags as deprecated.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| {
                TlsError(format!(
                    "the certificate and key do not make a TLS server: {e}"
                ))
            })?;
        Ok(Tls(Arc::new(config)))
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.0.clone())
    }
}
