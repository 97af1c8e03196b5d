//! Certificates for the secure stream transports (TLS over TCP, QUIC), and the rustls
//! configurations both build from them.
//!
//! The trust model is a private cluster CA, as Consul and Nomad use: every node holds the
//! CA certificate and its own certificate signed by it, whose DNS subject alternative name
//! is the node's name. Both ends of a stream show their certificate (mutual TLS):
//!
//! - the connecting side checks that the server's chain leads to the CA, and, when the
//!   core names the node it expects at the address ([`serf_proto::Output::OpenStream`]'s
//!   `peer`: a member's push-pull or fallback ping), that the certificate names that
//!   node. A join by address has no expected name: any certificate of the cluster's CA
//!   passes.
//! - the accepting side checks that the client's chain leads to the CA. It cannot check a
//!   name: the core learns who is calling only from what the stream carries.
//!
//! The node's one certificate serves as both server and client certificate: if it has an
//! extended key usage extension, it must list both `serverAuth` and `clientAuth`.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The ALPN protocol both ends announce, so a stray TLS or QUIC client of another
/// protocol fails the handshake instead of speaking to the core.
pub(crate) const ALPN: &[u8] = b"serf-rs/1";

/// A PEM file larger than this is refused before it is read: a CA bundle, a chain and a
/// key fit in a few kilobytes, and a configuration file is input like any other.
const MAX_PEM_FILE: u64 = 1 << 20;

/// The cluster's CA and this node's certificate and private key, for the TLS and QUIC
/// stream transports ([`crate::Builder::tls`], [`crate::Builder::quic`]).
///
/// All three are PEM, as `openssl`, `step`, `cfssl`, `consul tls` and Vault write them:
///
/// - `ca`: one or more `CERTIFICATE` blocks, the only trust anchors (the system's roots
///   are never used);
/// - `cert`: the node's certificate, then any intermediates. Its DNS subject alternative
///   name must be the node's name (`serf agent -node`), which is checked at start;
/// - `key`: the node's private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`).
///
/// ```
/// use serf_driver_tokio::Certificates;
///
/// // A throwaway cluster CA and a certificate for node "web-1", made with rcgen; in
/// // production these are files from the operator's CA.
/// let ca_key = rcgen::KeyPair::generate()?;
/// let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
/// ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// let ca = ca_params.self_signed(&ca_key)?;
/// let issuer = rcgen::Issuer::new(ca_params, ca_key);
/// let node_key = rcgen::KeyPair::generate()?;
/// let node = rcgen::CertificateParams::new(vec!["web-1".to_string()])?.signed_by(&node_key, &issuer)?;
///
/// let certs = Certificates::from_pem(ca.pem().as_bytes(), node.pem().as_bytes(), node_key.serialize_pem().as_bytes())?;
/// # let _ = certs;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Certificates {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Certificates")
            .field("ca", &self.ca.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Why certificates could not be loaded or do not fit this node. Each names the file or
/// the check and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A PEM file could not be read.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A PEM file is larger than any certificate bundle (1 MiB).
    #[error("{} is {size} bytes, larger than any certificate or key file (at most 1 MiB): is it the right file?", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A PEM input holds no usable item of the kind expected, or is malformed.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input: "CA", "certificate" or "private key", with its file when known.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the CA, the certificate or the key.
    #[error("{what} refused: {reason}")]
    Refused {
        /// What was refused.
        what: &'static str,
        /// rustls' reason.
        reason: String,
    },
    /// The node's certificate is not signed by the cluster's CA, or does not name the node.
    #[error(
        "the certificate does not fit node {node:?}: {reason} (it must be signed by the cluster CA and carry the node's name as a DNS subject alternative name)"
    )]
    NotForThisNode {
        /// The node's name.
        node: String,
        /// The check that failed.
        reason: String,
    },
    /// The node's name cannot appear in a certificate (a DNS name: letters, digits, `-`,
    /// `_` and `.`), so peers could not check it.
    #[error(
        "node name {0:?} cannot be checked against a certificate: with TLS or QUIC streams, use a DNS-style name (letters, digits, '-', '_', '.')"
    )]
    NameNotCertifiable(String),
}

impl Certificates {
    /// Loads the CA, the node's certificate chain and its private key from PEM files.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use serf_driver_tokio::Certificates;
    ///
    /// # let dir = std::env::temp_dir().join(format!("serf-doc-certs-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    /// # ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    /// # let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    /// # let key = rcgen::KeyPair::generate()?;
    /// # let cert = rcgen::CertificateParams::new(vec!["web-1".to_string()])?.signed_by(&key, &ca)?;
    /// # std::fs::write(dir.join("ca.pem"), ca.pem())?;
    /// # std::fs::write(dir.join("web-1.pem"), cert.pem())?;
    /// # std::fs::write(dir.join("web-1-key.pem"), key.serialize_pem())?;
    /// // The files an operator's CA wrote for node "web-1".
    /// let certs = Certificates::from_pem_files(dir.join("ca.pem"), dir.join("web-1.pem"), dir.join("web-1-key.pem"))?;
    /// // A wrong path names the file.
    /// let err = Certificates::from_pem_files(dir.join("nope.pem"), dir.join("web-1.pem"), dir.join("web-1-key.pem")).unwrap_err();
    /// assert!(err.to_string().contains("nope.pem"));
    /// # let _ = certs;
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pem_files(
        ca: impl AsRef<Path>,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Certificates, CertError> {
        let (ca, cert, key) = (ca.as_ref(), cert.as_ref(), key.as_ref());
        let label = |what: &str, p: &Path| format!("{what} file {}", p.display());
        Ok(Certificates {
            ca: certs(&read_pem(ca)?, &label("CA", ca))?,
            chain: certs(&read_pem(cert)?, &label("certificate", cert))?,
            key: Arc::new(private_key(&read_pem(key)?, &label("private key", key))?),
        })
    }

    /// The same from PEM text in memory.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<Certificates, CertError> {
        Ok(Certificates {
            ca: certs(ca, "CA")?,
            chain: certs(cert, "certificate")?,
            key: Arc::new(private_key(key, "private key")?),
        })
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, CertError> {
    let read = |source| CertError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_PEM_FILE {
        return Err(CertError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    std::fs::read(path).map_err(read)
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let out = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            what: what.to_string(),
            reason: e.to_string(),
        })?;
    if out.is_empty() {
        return Err(CertError::Pem {
            what: what.to_string(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(out)
}

fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| CertError::Pem {
        what: what.to_string(),
        reason: match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block found".into()
            }
            e => e.to_string(),
        },
    })
}

/// The rustls configurations of one node, built once at start.
#[derive(Debug, Clone)]
pub(crate) struct SecureConfigs {
    /// For streams to a named node: the certificate must name it.
    pub named: Arc<ClientConfig>,
    /// For streams to an address only (a join): any certificate of the cluster's CA.
    pub any_member: Arc<ClientConfig>,
    /// For accepted streams: a client certificate of the cluster's CA is required.
    pub server: Arc<ServerConfig>,
}

impl SecureConfigs {
    /// Builds the configurations, and checks that this node's certificate is signed by
    /// the CA and names `node`, so a misconfigured node fails at start, not at every
    /// peer.
    pub fn new(certs: &Certificates, node: &str) -> Result<SecureConfigs, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in &certs.ca {
            roots.add(ca.clone()).map_err(|e| CertError::Refused {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let node_name = certifiable(node)?;
        check_own_certificate(certs, &roots, &provider, &node_name, node)?;

        let verifier = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| CertError::Refused {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        let client = |verifier: Arc<dyn ServerCertVerifier>| {
            let mut config = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(refused("TLS client configuration"))?
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_client_auth_cert(certs.chain.clone(), certs.key.clone_key())
                .map_err(refused("certificate and private key"))?;
            config.alpn_protocols = vec![ALPN.to_vec()];
            Ok::<_, CertError>(Arc::new(config))
        };
        let named = client(verifier.clone())?;
        let any_member = client(Arc::new(AnyMemberVerifier {
            roots: roots.clone(),
            inner: verifier,
            provider: provider.clone(),
        }))?;

        let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| CertError::Refused {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(refused("TLS server configuration"))?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.chain.clone(), certs.key.clone_key())
            .map_err(refused("certificate and private key"))?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        Ok(SecureConfigs {
            named,
            any_member,
            server: Arc::new(server),
        })
    }

    /// The client configuration and server name for a stream to `peer` (if known) at
    /// `to`. Fails when the expected peer's name cannot be a certificate name: no
    /// certificate could prove it.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub fn client_for(
        &self,
        peer: Option<&str>,
        to: std::net::SocketAddr,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), String> {
        match peer {
            Some(name) => match ServerName::try_from(name.to_string()) {
                Ok(n) => Ok((self.named.clone(), n)),
                Err(_) => Err(format!(
                    "peer name {name:?} is not a DNS-style name a certificate can carry"
                )),
            },
            // Only the chain is checked (AnyMemberVerifier): the name is a formality.
            None => Ok((
                self.any_member.clone(),
                ServerName::IpAddress(to.ip().into()),
            )),
        }
    }
}

fn refused(what: &'static str) -> impl Fn(rustls::Error) -> CertError {
    move |e| CertError::Refused {
        what,
        reason: e.to_string(),
    }
}

/// A node's name as a certificate name.
pub(crate) fn certifiable(node: &str) -> Result<ServerName<'static>, CertError> {
    match ServerName::try_from(node.to_string()) {
        Ok(n @ ServerName::DnsName(_)) => Ok(n),
        _ => Err(CertError::NameNotCertifiable(node.to_string())),
    }
}

fn check_own_certificate(
    certs: &Certificates,
    roots: &RootCertStore,
    provider: &CryptoProvider,
    name: &ServerName<'_>,
    node: &str,
) -> Result<(), CertError> {
    let wrong = |reason: String| CertError::NotForThisNode {
        node: node.to_string(),
        reason,
    };
    let parsed = ParsedCertificate::try_from(&certs.chain[0]).map_err(|e| wrong(e.to_string()))?;
    verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        &certs.chain[1..],
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .map_err(|e| wrong(e.to_string()))?;
    rustls::client::verify_server_name(&parsed, name).map_err(|e| wrong(e.to_string()))
}

/// Checks the server's chain against the cluster's CA, but no name: for a join by
/// address, where the core does not know who answers. Any member of the cluster may.
#[derive(Debug)]
struct AnyMemberVerifier {
    roots: Arc<RootCertStore>,
    inner: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyMemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    struct Ca(CertifiedIssuer<'static, KeyPair>);

    impl Ca {
        fn new() -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
        }

        fn pem(&self, node: &str) -> (String, String, String) {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![node.to_string()])
                .unwrap()
                .signed_by(&key, &self.0)
                .unwrap();
            (self.0.pem(), cert.pem(), key.serialize_pem())
        }

        #[cfg(feature = "tls")]
        fn configs(&self, node: &str) -> SecureConfigs {
            let (ca, cert, key) = self.pem(node);
            let certs =
                Certificates::from_pem(ca.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
            SecureConfigs::new(&certs, node).unwrap()
        }
    }

    /// A TLS handshake in memory: `client` expecting `peer` (or anyone of the CA) at the
    /// other end, `server` answering.
    #[cfg(feature = "tls")]
    async fn handshake(
        client: &SecureConfigs,
        peer: Option<&str>,
        server: &SecureConfigs,
    ) -> Result<(), String> {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (config, name) = client.client_for(peer, "127.0.0.1:7946".parse().unwrap())?;
        let connect = tokio_rustls::TlsConnector::from(config).connect(name, a);
        let accept = tokio_rustls::TlsAcceptor::from(server.server.clone()).accept(b);
        let (c, s) = tokio::join!(connect, accept);
        let mut c = c.map_err(|e| format!("client: {e}"))?;
        let mut s = s.map_err(|e| format!("server: {e}"))?;
        // TLS 1.3 checks the client's certificate after the client thinks it is done:
        // a byte each way shows both ends accepted.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut byte = [0u8];
        let (w, r) = tokio::join!(c.write_all(b"x"), s.read_exact(&mut byte));
        w.map_err(|e| format!("client: {e}"))?;
        r.map_err(|e| format!("server: {e}"))?;
        Ok(())
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn the_peer_must_be_the_node_the_core_expects() {
        let ca = Ca::new();
        let (a, b) = (ca.configs("node-a"), ca.configs("node-b"));
        handshake(&a, Some("node-b"), &b).await.unwrap();
        let err = handshake(&a, Some("node-c"), &b).await.unwrap_err();
        assert!(err.contains("not valid for name \"node-c\""), "{err}");
        // A join by address: any member of the cluster's CA.
        handshake(&a, None, &b).await.unwrap();
    }

    #[cfg(feature = "tls")]
    #[tokio::test]
    async fn a_certificate_of_another_ca_fails_either_way() {
        let (ca, other) = (Ca::new(), Ca::new());
        let a = ca.configs("node-a");
        let intruder = other.configs("node-b");
        // As server: refused by the client, named or not.
        assert!(handshake(&a, Some("node-b"), &intruder).await.is_err());
        assert!(handshake(&a, None, &intruder).await.is_err());
        // As client: refused by the server (mutual TLS), even though it accepts ours.
        let err = handshake(&intruder, None, &a).await.unwrap_err();
        assert!(err.contains("client") || err.contains("server"), "{err}");
    }

    #[test]
    fn a_certificate_must_name_its_node_and_come_from_the_ca() {
        let (ca, other) = (Ca::new(), Ca::new());
        let (ca_pem, cert, key) = ca.pem("node-b");
        let certs =
            Certificates::from_pem(ca_pem.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        let err = SecureConfigs::new(&certs, "node-a").unwrap_err();
        assert!(matches!(err, CertError::NotForThisNode { .. }), "{err}");
        let (other_ca, _, _) = other.pem("x");
        let certs =
            Certificates::from_pem(other_ca.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap();
        let err = SecureConfigs::new(&certs, "node-b").unwrap_err();
        assert!(matches!(err, CertError::NotForThisNode { .. }), "{err}");
        let err = SecureConfigs::new(&certs, "web 1").unwrap_err();
        assert!(matches!(err, CertError::NameNotCertifiable(_)), "{err}");
    }

    #[test]
    fn bad_pem_files_say_which_file_and_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("serf-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, cert, key) = Ca::new().pem("node-a");
        let (ca_path, cert_path, key_path) = (
            dir.join("ca.pem"),
            dir.join("node.pem"),
            dir.join("node.key"),
        );
        std::fs::write(&ca_path, &ca).unwrap();
        std::fs::write(&cert_path, &cert).unwrap();
        std::fs::write(&key_path, &key).unwrap();
        assert!(Certificates::from_pem_files(&ca_path, &cert_path, &key_path).is_ok());

        let missing = dir.join("missing.pem");
        let err = Certificates::from_pem_files(&missing, &cert_path, &key_path).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        // The key where the certificate should be, and garbage.
        let err = Certificates::from_pem_files(&ca_path, &key_path, &key_path).unwrap_err();
        assert!(
            err.to_string().contains("node.key") && err.to_string().contains("CERTIFICATE"),
            "{err}"
        );
        std::fs::write(&key_path, b"-----BEGIN PRIVATE KEY-----\n!!!!\n").unwrap();
        let err = Certificates::from_pem_files(&ca_path, &cert_path, &key_path).unwrap_err();
        assert!(err.to_string().contains("node.key"), "{err}");
        // A huge file is refused before it is read.
        let big = dir.join("big.pem");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_PEM_FILE + 1)
            .unwrap();
        let err = Certificates::from_pem_files(&big, &cert_path, &key_path).unwrap_err();
        assert!(matches!(err, CertError::TooLarge { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
