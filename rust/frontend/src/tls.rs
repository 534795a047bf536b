//! TLS on the public ports (Triton's `--grpc-use-ssl` flags, and `--http-use-ssl` for the REST
//! port): the server's certificate chain and key, and for mutual TLS the root certificate that
//! client certificates must chain to, read from PEM files into rustls `ServerConfig`s (ring
//! provider; ALPN `h2` on the gRPC port, `h2` and `http/1.1` on the REST port). `reload` reads
//! the files again and swaps both configs for new connections; open ones keep the session they
//! negotiated. Bad files never replace good ones: the error names the flag and the file. A
//! plaintext client is told that the port wants TLS: a gRPC status on the gRPC port, a 400 on
//! the REST port.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::body::{full, status_response};
use crate::grpc::{Code, Status};

/// What a plaintext client of a TLS port is told (its library would otherwise only say
/// "Socket closed").
pub const PLAINTEXT_REFUSED: &str = "this port speaks TLS only (the server runs with \
    --grpc-use-ssl): connect over TLS (tritonclient: ssl=True with root_certificates; \
    perf_analyzer: --ssl-grpc-use-ssl true)";

/// What a plaintext HTTP client of a TLS REST port is told (400, as nginx answers plain HTTP
/// sent to an HTTPS port).
pub const PLAINTEXT_HTTP_REFUSED: &str = "this port speaks HTTPS only (the server runs with \
    --http-use-ssl): use https:// (tritonclient.http: ssl=True; perf_analyzer: -u https://HOST:PORT \
    with --ssl-https-ca-certificates-file)";

/// The first byte of every TLS connection: a handshake record (RFC 8446, 5.1).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Where the PEM files are (read again on every `reload`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `--grpc-server-cert`: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// `--grpc-server-key`: the private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `--grpc-root-cert` with `--grpc-use-ssl-mutual`: the CA certificates a client's
    /// certificate must chain to; None: clients are not asked for one.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS files cannot be used: each names the flag and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("{flag} {}: {source}", path.display())]
    Unreadable {
        /// The flag that names the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{flag} {}: {reason}", path.display())]
    Invalid {
        /// The flag that names the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error(
        "--grpc-server-key {} is not the private key of the certificate in --grpc-server-cert {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

const CERT_FLAG: &str = "--grpc-server-cert";
const KEY_FLAG: &str = "--grpc-server-key";
const ROOT_FLAG: &str = "--grpc-root-cert";

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Unreadable {
        flag,
        path: path.to_owned(),
        source,
    })
}

fn invalid(flag: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Invalid {
        flag,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
fn certificates(flag: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(flag, path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(flag, path, format!("unreadable PEM: {error}")))?;
    if chain.is_empty() {
        return Err(invalid(
            flag,
            path,
            "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(chain)
}

/// The rustls config `files` describe, checked: the key is the certificate's, the client CA
/// holds usable roots.
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(ring::default_provider());
    let chain = certificates(CERT_FLAG, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(KEY_FLAG, &files.key)?).map_err(|error| {
        invalid(
            KEY_FLAG,
            &files.key,
            format!("no usable PEM private key in it (PKCS#8, PKCS#1 or SEC1): {error}"),
        )
    })?;
    check_key_matches(&provider, &chain, &key, files)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid(CERT_FLAG, &files.cert, error))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(ROOT_FLAG, path)? {
                roots
                    .add(certificate)
                    .map_err(|error| invalid(ROOT_FLAG, path, error))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|error| invalid(ROOT_FLAG, path, error))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| invalid(CERT_FLAG, &files.cert, error))?;
    // gRPC is HTTP/2 only: a client offering just http/1.1 fails the handshake with a
    // no_application_protocol alert instead of a confusing HTTP/2 preface error later.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn check_key_matches(
    provider: &CryptoProvider,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    files: &TlsFiles,
) -> Result<(), TlsError> {
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| invalid(KEY_FLAG, &files.key, error))?;
    match CertifiedKey::new(chain.to_vec(), signing).keys_match() {
        Ok(()) => Ok(()),
        // Unknown: the certificate's public key could not be compared; rustls decides later.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(()),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(error) => Err(invalid(CERT_FLAG, &files.cert, error)),
    }
}

/// Which port a connection came in on: the protocols its TLS offers (ALPN) and how a
/// plaintext client is told to use TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    /// gRPC: HTTP/2 only.
    Grpc,
    /// The v2 REST port: HTTP/1.1 and HTTP/2.
    Http,
}

/// The public ports' TLS: the files and the configs new connections get (one certificate for
/// both ports, one reload for both).
pub struct ServerTls {
    files: TlsFiles,
    /// The gRPC port's config (ALPN `h2`).
    grpc: ArcSwap<ServerConfig>,
    /// The REST port's: the same certificates, ALPN `h2` and `http/1.1`.
    http: ArcSwap<ServerConfig>,
}

/// The REST port's config from the gRPC port's: curl and tritonclient.http speak HTTP/1.1.
fn http_config(grpc: &ServerConfig) -> ServerConfig {
    let mut config = grpc.clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads `files`; the error says which flag's file is wrong and why.
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let config = server_config(&files)?;
        Ok(ServerTls {
            files,
            http: ArcSwap::from_pointee(http_config(&config)),
            grpc: ArcSwap::from_pointee(config),
        })
    }

    /// Reads the files again; on success new connections use them, on failure the previous
    /// config stays (open connections are untouched either way).
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = server_config(&self.files)?;
        self.http.store(Arc::new(http_config(&config)));
        self.grpc.store(Arc::new(config));
        Ok(())
    }

    /// The files it reads.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// The TLS handshake of a new connection on `port`, with the config current now; None
    /// when the client sent no TLS, after telling a plaintext client so (for at most `within`).
    pub(crate) async fn accept(
        &self,
        stream: TcpStream,
        port: Port,
        within: Duration,
    ) -> std::io::Result<Option<TlsStream<TcpStream>>> {
        let mut first = [0u8; 1];
        if stream.peek(&mut first).await? == 1 && first[0] != TLS_HANDSHAKE_RECORD {
            match port {
                Port::Grpc => refuse_plaintext(stream, within).await,
                Port::Http => refuse_plaintext_http(stream, within).await,
            }
            return Ok(None);
        }
        let config = match port {
            Port::Grpc => self.grpc.load_full(),
            Port::Http => self.http.load_full(),
        };
        let stream = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        Ok(Some(stream))
    }
}

/// Serves a plaintext HTTP/2 connection for at most `within`, answering every call
/// UNAVAILABLE with `PLAINTEXT_REFUSED`; nothing reaches the service.
async fn refuse_plaintext(stream: TcpStream, within: Duration) {
    let status = Status::new(Code::Unavailable, PLAINTEXT_REFUSED);
    let connection = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(8)
        .serve_connection(
            TokioIo::new(stream),
            service_fn(move |_| {
                let response = status_response(&status);
                async move { Ok::<_, Infallible>(response) }
            }),
        );
    let _ = tokio::time::timeout(within, connection).await;
}

/// Serves a plaintext HTTP/1.1 or h2c connection for at most `within`, answering every request
/// 400 with `PLAINTEXT_HTTP_REFUSED` and closing; nothing reaches the service.
async fn refuse_plaintext_http(stream: TcpStream, within: Duration) {
    let body = serde_json::json!({ "error": PLAINTEXT_HTTP_REFUSED }).to_string();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(8);
    let connection = builder.serve_connection(
        TokioIo::new(stream),
        service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let mut response = http::Response::new(full(bytes::Bytes::from(body.clone())));
            *response.status_mut() = http::StatusCode::BAD_REQUEST;
            let headers = response.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            // HTTP/2 has no such header: the timeout ends that connection.
            if request.version() < http::Version::HTTP_2 {
                headers.insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            async move { Ok::<_, Infallible>(response) }
        }),
    );
    let _ = tokio::time::timeout(within, connection).await;
}
