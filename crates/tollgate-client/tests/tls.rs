//! HTTPS: the client's rustls (ring provider) against a real Tollgate behind TLS
//! with a private CA.

mod common;

use std::sync::Arc;

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::server::TlsStream;
use tollgate_client::{Client, DecisionPoint, Failure, Status};

/// Accepts TCP connections and completes the TLS handshake; failed handshakes are
/// dropped.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let server = common::Server::start().await;
    // A certificate for 127.0.0.1 issued by a private CA.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", tcp.local_addr().unwrap());
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    };
    // The proxy forwards to the plain-HTTP Tollgate (as a TLS terminator would).
    let plain = server.url.clone();
    let proxy = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let plain = plain.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let mut fwd = common::http()
                .request(parts.method.clone(), format!("{plain}{}", parts.uri))
                .body(bytes.to_vec());
            for (k, v) in &parts.headers {
                if k != "host" {
                    fwd = fwd.header(k, v);
                }
            }
            let res = fwd.send().await.unwrap();
            let status = res.status();
            let body = res.bytes().await.unwrap();
            (
                status,
                [("content-type", "application/json")],
                body.to_vec(),
            )
        }
    });
    tokio::spawn(async move { axum::serve(listener, proxy).await.unwrap() });

    let client = Client::builder()
        .base_url(&url)
        .api_key(&server.test_key)
        .add_root_certificate_pem(ca_cert.pem())
        .build()
        .unwrap();
    let d = client
        .enforce(&common::in_band("OPEN_POSITION"))
        .await
        .unwrap();
    assert_eq!(d.status, Status::Allow);
    client.verify(&d).await.unwrap();

    // Without the CA the certificate is not trusted: no verdict, a block.
    let untrusting = Client::builder()
        .base_url(&url)
        .api_key(&server.test_key)
        .max_retries(0)
        .build()
        .unwrap();
    let err = untrusting
        .enforce(&common::in_band("OPEN_POSITION"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.blocked().unwrap().failure, Some(Failure::Transport(_))),
        "{err}"
    );
    assert!(matches!(
        Client::builder()
            .add_root_certificate_pem("not a pem")
            .build(),
        Err(tollgate_client::Error::Config(_))
    ));
}
