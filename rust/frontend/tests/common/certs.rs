//! Test certificates (rcgen): a certificate authority, server and client leaves for
//! `localhost`, the server's files as `TlsFiles`, and a rustls client config trusting an
//! authority.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferroserve_frontend::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A test certificate authority.
pub struct Authority {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Authority {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Authority { issuer }
    }

    /// A leaf certificate for `localhost` with `serial`, for a server or a client; (cert PEM,
    /// key PEM).
    pub fn leaf(&self, serial: u64, client: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }
}

/// Writes the server's files into `dir`: (files, the server certificate's DER).
pub fn write_server_files(
    dir: &Path,
    authority: &Authority,
    serial: u64,
    client_ca: Option<&Authority>,
) -> (TlsFiles, Vec<u8>) {
    let (cert, key) = authority.leaf(serial, false);
    let files = TlsFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
        client_ca: client_ca.map(|_| dir.join("clients-ca.crt")),
    };
    std::fs::write(&files.cert, &cert).unwrap();
    std::fs::write(&files.key, &key).unwrap();
    if let (Some(path), Some(ca)) = (&files.client_ca, client_ca) {
        std::fs::write(path, ca.pem()).unwrap();
    }
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
    (files, der.to_vec())
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferroserve-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client's TLS settings: trusts `authority`, presents `identity` (cert PEM, key PEM).
pub fn client_config(
    authority: &Authority,
    identity: Option<&(String, String)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(authority.pem().as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// `config` offering `protocols` by ALPN instead (the REST port takes `http/1.1` too).
pub fn with_alpn(
    config: &Arc<rustls::ClientConfig>,
    protocols: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::clone(config);
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}
