//! TLS on the public port: calls over TLS (native and forwarded), plaintext refused, mutual TLS
//! with and without a client certificate, certificates reloaded for new connections while open
//! ones go on, bad files named with their flag (and never replacing good ones on reload), and a
//! client that never finishes its handshake cut by the handshake timeout.
// A test that cannot set up panics: unwrap says as much as expect would here.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::{Authority, client_config, scratch, write_server_files};
use common::*;
use ferroserve_frontend::{ConnectionLimits, ServerTls, TlsError, TlsFiles};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP/2 connection over TLS, and the certificate the server presented.
async fn connect_tls(
    address: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(SendRequest<TestBody>, Vec<u8>)> {
    let tcp = TcpStream::connect(address).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (_, session) = tls.get_ref();
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    let presented = session.peer_certificates().unwrap()[0].to_vec();
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tls))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, presented))
}

/// One ModelInfer call for model "m"; the doubled answer checked. Err when the connection
/// fails (a refused client certificate surfaces here under TLS 1.3).
async fn infer(
    client: &mut SendRequest<TestBody>,
    address: std::net::SocketAddr,
) -> Result<(), hyper::Error> {
    use http_body_util::BodyExt;
    let raw = rows_of(1, 1);
    let message = infer_request("m", "1", "tls", &[1, 4], &raw);
    client.ready().await?;
    let body = http_body_util::Full::new(frame(&message)).boxed();
    let response = client
        .send_request(grpc_request(address, MODEL_INFER, None, body))
        .await?;
    let mut buffer = response.into_body().collect().await?.to_bytes().to_vec();
    let answer = take_message(&mut buffer).expect("no answer");
    assert_eq!(answer, doubled_response("tls", &raw, false));
    Ok(())
}

fn serve_tls(files: TlsFiles, limits: ConnectionLimits) -> (Harness, Arc<ServerTls>) {
    let tls = Arc::new(ServerTls::load(files).unwrap());
    let harness = Harness::with_tls(true, 1 << 20, limits, Some(Arc::clone(&tls)));
    (harness, tls)
}

#[test]
fn calls_over_tls_are_answered_natively_and_forwarded() {
    let dir = scratch("calls");
    let authority = Authority::new("test CA");
    let (files, _) = write_server_files(&dir, &authority, 1, None);
    let (h, _) = serve_tls(files, ConnectionLimits::default());
    let address = h.frontend.address();
    h.run(async {
        let (mut client, _) = connect_tls(address, client_config(&authority, None))
            .await
            .unwrap();
        infer(&mut client, address).await.unwrap();
        let reply = unary(&mut client, address, SERVER_LIVE, &[], None).await;
        assert_eq!(reply.status().0, 0);
    });
    assert_eq!(h.calls(), 1);
}

#[test]
fn a_plaintext_client_of_a_tls_port_is_told_to_use_tls() {
    let dir = scratch("plaintext");
    let authority = Authority::new("test CA");
    let (files, _) = write_server_files(&dir, &authority, 1, None);
    let (h, _) = serve_tls(files, ConnectionLimits::default());
    let address = h.frontend.address();
    h.run(async {
        let mut client = connect(&h.frontend).await;
        let message = infer_request("m", "1", "plain", &[1, 4], &rows_of(1, 1));
        for path in [MODEL_INFER, SERVER_LIVE] {
            let reply = unary(&mut client, address, path, &message, None).await;
            let (code, text) = reply.status();
            assert_eq!(code, 14, "{text}");
            assert!(text.contains("this port speaks TLS only"), "{text}");
            assert!(reply.messages.is_empty());
        }
    });
    // Neither the native path nor the backend saw the calls.
    assert_eq!(h.calls(), 0);
}

#[test]
fn mutual_tls_refuses_clients_without_a_trusted_certificate() {
    let dir = scratch("mutual");
    let servers = Authority::new("server CA");
    let clients = Authority::new("client CA");
    let (files, _) = write_server_files(&dir, &servers, 1, Some(&clients));
    let (h, _) = serve_tls(files, ConnectionLimits::default());
    let address = h.frontend.address();
    let trusted = clients.leaf(7, true);
    let stranger = Authority::new("another CA").leaf(8, true);
    h.run(async {
        for identity in [None, Some(&stranger)] {
            // Under TLS 1.3 the client finishes its side first: the refusal ends the connection
            // before the first call is answered.
            let refused = match connect_tls(address, client_config(&servers, identity)).await {
                Err(_) => true,
                Ok((mut client, _)) => infer(&mut client, address).await.is_err(),
            };
            assert!(refused, "served a client with {identity:?}");
        }
        let (mut client, _) = connect_tls(address, client_config(&servers, Some(&trusted)))
            .await
            .unwrap();
        infer(&mut client, address).await.unwrap();
    });
    assert_eq!(h.calls(), 1);
}

#[test]
fn reload_gives_new_connections_the_new_certificate_and_open_ones_go_on() {
    let dir = scratch("reload");
    let authority = Authority::new("test CA");
    let (files, first) = write_server_files(&dir, &authority, 1, None);
    let (h, tls) = serve_tls(files.clone(), ConnectionLimits::default());
    let address = h.frontend.address();
    let config = client_config(&authority, None);
    h.run(async {
        let (mut open, presented) = connect_tls(address, Arc::clone(&config)).await.unwrap();
        assert_eq!(presented, first);
        infer(&mut open, address).await.unwrap();

        let (_, second) = write_server_files(&dir, &authority, 2, None);
        tls.reload().unwrap();
        let (mut fresh, presented) = connect_tls(address, Arc::clone(&config)).await.unwrap();
        assert_eq!(presented, second);
        infer(&mut fresh, address).await.unwrap();
        infer(&mut open, address).await.unwrap();

        // Bad new files: the reload fails naming them, the last good certificate stays.
        std::fs::write(&files.key, "not a key").unwrap();
        let error = tls.reload().unwrap_err().to_string();
        assert!(error.contains("--grpc-server-key"), "{error}");
        let (mut after, presented) = connect_tls(address, Arc::clone(&config)).await.unwrap();
        assert_eq!(presented, second);
        infer(&mut after, address).await.unwrap();
    });
}

#[test]
fn unusable_files_are_refused_naming_the_flag_and_the_file() {
    let dir = scratch("refused");
    let authority = Authority::new("test CA");
    let (files, _) = write_server_files(&dir, &authority, 1, None);
    let message = |files: &TlsFiles| -> String {
        let error: TlsError = ServerTls::load(files.clone()).unwrap_err();
        error.to_string()
    };

    let missing = TlsFiles {
        cert: dir.join("absent.crt"),
        ..files.clone()
    };
    let text = message(&missing);
    assert!(
        text.starts_with("--grpc-server-cert ") && text.contains("absent.crt"),
        "{text}"
    );

    let not_pem = dir.join("garbage.crt");
    std::fs::write(&not_pem, "hello").unwrap();
    let text = message(&TlsFiles {
        cert: not_pem.clone(),
        ..files.clone()
    });
    assert!(
        text.contains("--grpc-server-cert") && text.contains("no PEM certificate"),
        "{text}"
    );

    let text = message(&TlsFiles {
        key: not_pem.clone(),
        ..files.clone()
    });
    assert!(
        text.contains("--grpc-server-key") && text.contains("garbage.crt"),
        "{text}"
    );

    let (_, other_key) = authority.leaf(2, false);
    let other = dir.join("other.key");
    std::fs::write(&other, other_key).unwrap();
    let text = message(&TlsFiles {
        key: other,
        ..files.clone()
    });
    assert!(
        text.contains("is not the private key of the certificate"),
        "{text}"
    );

    let text = message(&TlsFiles {
        client_ca: Some(not_pem),
        ..files
    });
    assert!(text.contains("--grpc-root-cert"), "{text}");
}

#[test]
fn a_client_that_never_finishes_the_tls_handshake_is_cut() {
    let dir = scratch("silent");
    let authority = Authority::new("test CA");
    let (files, _) = write_server_files(&dir, &authority, 1, None);
    let limits = ConnectionLimits {
        handshake_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    };
    let (h, _) = serve_tls(files, limits);
    let address = h.frontend.address();
    h.run(async {
        // One sends nothing, one the first bytes of a ClientHello and then nothing.
        for sent in [&b""[..], &[0x16, 0x03, 0x01, 0x02, 0x00][..]] {
            let started = Instant::now();
            let mut tcp = TcpStream::connect(address).await.unwrap();
            tcp.write_all(sent).await.unwrap();
            let mut buffer = [0u8; 64];
            loop {
                match tcp.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            assert!(started.elapsed() < Duration::from_secs(2));
        }
        // The connection's task unregisters it just after closing the socket.
        let deadline = Instant::now() + Duration::from_secs(1);
        while h.frontend.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h.frontend.open_connections(), 0);
    });
}
