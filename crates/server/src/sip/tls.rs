//! SIP over TLS (RFC 3261 §26): the server certificate and key, read once at start.
//!
//! Only the server side exists: phones connect to us. Requests toward a phone registered over TLS
//! go back over the connection it registered on (see [`super::transport::Transports::send`]).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::config::SipConfig;

/// The TLS server configuration for `sip.tls_listen`, or None when TLS is off. Errors name the
/// option and the file, for the operator reading the start-up log.
pub fn server_config(cfg: &SipConfig) -> Result<Option<Arc<rustls::ServerConfig>>, String> {
    if cfg.tls_listen.is_empty() {
        return Ok(None);
    }
    load(
        &cfg.tls_cert,
        &cfg.tls_key,
        "sip.tls_cert",
        "sip.tls_key",
        &[],
    )
    .map(Some)
}

/// A TLS server configuration from PEM files; errors name the option (`cert_opt`, `key_opt`)
/// and the file. `alpn`: the application protocols offered, in order.
pub fn load(
    cert: &str,
    key: &str,
    cert_opt: &str,
    key_opt: &str,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = load_certs(Path::new(cert)).map_err(|e| format!("{cert_opt}: {cert}: {e}"))?;
    let key_der = load_key(Path::new(key)).map_err(|e| format!("{key_opt}: {key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut sc = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("{cert_opt}: TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!("{key_opt}: {key} does not fit the certificate in {cert} (or is unusable): {e}")
        })?;
    sc.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(sc))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found (expected a PEM certificate chain)".into());
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PRIVATE KEY block found (expected a PEM private key)".to_string()
        }
        e => format!("not a valid PEM private key file: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cert: &str, key: &str) -> SipConfig {
        SipConfig {
            tls_listen: "127.0.0.1:0".into(),
            tls_cert: cert.into(),
            tls_key: key.into(),
            ..SipConfig::default()
        }
    }

    #[test]
    fn off_by_default_and_errors_name_option_and_file() {
        assert!(server_config(&SipConfig::default()).unwrap().is_none());
        let dir = std::env::temp_dir().join(format!("strowger-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = server_config(&cfg(missing.to_str().unwrap(), "/x")).unwrap_err();
        assert!(
            e.starts_with("sip.tls_cert:")
                && e.contains("missing.pem")
                && e.contains("cannot read"),
            "{e}"
        );
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "hello\n").unwrap();
        let e = server_config(&cfg(junk.to_str().unwrap(), "/x")).unwrap_err();
        assert!(e.contains("sip.tls_cert") && e.contains("junk.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
