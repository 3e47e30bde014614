//! TLS trust for the websockets the broker opens itself (the SSM data channel; later EICE):
//! the system's roots plus the certificates in `AWS_CA_BUNDLE`, the variable the AWS CLI and SDKs
//! use for a private CA (a TLS-inspecting proxy, or a local double).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The environment variable naming a PEM bundle of extra trusted CAs.
pub(crate) const CA_BUNDLE_VAR: &str = "AWS_CA_BUNDLE";

/// Why no TLS configuration could be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    /// The bundle named by `AWS_CA_BUNDLE` could not be read or holds no certificate.
    #[error("cannot use the CA bundle {path} (from {CA_BUNDLE_VAR}): {detail}")]
    Bundle {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A client configuration trusting the system roots and `AWS_CA_BUNDLE`, if set.
pub(crate) fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let bundle = std::env::var_os(CA_BUNDLE_VAR).filter(|v| !v.is_empty()).map(PathBuf::from);
    client_config_with(bundle.as_deref())
}

/// [`client_config`] with the bundle as a parameter (a test seam).
pub(crate) fn client_config_with(bundle: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, errors = native.errors.len(), "system trust roots loaded");
    if let Some(path) = bundle {
        let bundle_err = |detail: String| TlsError::Bundle { path: path.to_path_buf(), detail };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bundle_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bundle_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(bundle_err("no PEM certificate in it".into()));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(bundle_err("none of its certificates could be parsed".into()));
        }
        tracing::debug!(path = %path.display(), added, "extra trust roots from {CA_BUNDLE_VAR}");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bundles_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = client_config_with(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("missing.pem") && err.contains(CA_BUNDLE_VAR), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = client_config_with(Some(&empty)).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        assert!(client_config_with(None).is_ok());
    }
}
