//! TLS for wss:// relays: the system's trusted certificate authorities,
//! plus, for a relay with a self-signed certificate, the school's own CA
//! file. Certificates are always verified.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::ClientError;

/// Checks that `path` is a PEM file with at least one certificate.
pub fn check_ca_file(path: &Path) -> Result<(), ClientError> {
    read_certificates(path).map(|_| ())
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |detail: String| ClientError::BadCaFile {
        path: path.to_path_buf(),
        detail,
    };
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certificates.is_empty() {
        return Err(bad("it holds no certificate".into()));
    }
    Ok(certificates)
}

/// The client TLS settings for a relay.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = RootCertStore::empty();
    for certificate in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(certificate);
    }
    if let Some(path) = ca_file {
        for certificate in read_certificates(path)? {
            roots.add(certificate).map_err(|e| ClientError::BadCaFile {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
