//! The lab's TLS: one lab CA made at start (its PEM goes to `<lab dir>/lab-ca.pem`, the file
//! `AWS_CA_BUNDLE` names), server certificates it signs for the `wss://` doubles (the MGS data
//! channel with `ssm_tls`, and always the EICE service), and the plain-or-TLS connection type
//! the websocket services read. rcgen and rustls both use aws-lc-rs, never ring.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};

use anyhow::Context;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;

/// The lab's certificate authority: one per lab, for every `wss://` double.
pub(crate) struct LabCa {
    params: CertificateParams,
    key: KeyPair,
    cert: Certificate,
}

impl LabCa {
    /// Makes a fresh CA.
    pub(crate) fn generate() -> anyhow::Result<LabCa> {
        let key = KeyPair::generate().context("generating the lab CA key")?;
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = name("ec2-lab CA");
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).context("signing the lab CA")?;
        Ok(LabCa { params, key, cert })
    }

    /// The CA certificate, PEM (what `AWS_CA_BUNDLE` points at).
    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// An acceptor presenting a fresh certificate this CA signed for `names` (DNS names, or IP
    /// addresses, which become IP SANs), with `common_name` as its subject.
    pub(crate) fn acceptor(&self, names: &[String], common_name: &str) -> anyhow::Result<TlsAcceptor> {
        let key = KeyPair::generate().context("generating the server key")?;
        let mut server = CertificateParams::new(names.to_vec()).context("server certificate names")?;
        server.distinguished_name = name(common_name);
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = server.signed_by(&key, &issuer).context("signing the server certificate")?;
        let chain = vec![CertificateDer::from(cert.der().to_vec()), CertificateDer::from(self.cert.der().to_vec())];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .context("TLS server certificate")?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "ec2-lab");
    dn
}

/// A plain or TLS server connection.
pub(crate) enum Conn {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut task::Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut task::Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
