//! HTTPS on the REST port (`--http-use-ssl`): a raw HTTP/1.1 request over TLS as curl sends it,
//! inference over HTTP/1.1 and h2 (by ALPN), the same certificate as the gRPC port and one
//! reload for both, a plaintext client answered 400 and closed, mutual TLS, and a client that
//! never finishes its handshake cut by the handshake timeout.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::certs::{Authority, client_config, scratch, with_alpn, write_server_files};
use common::*;
use ferroserve_frontend::{ConnectionLimits, ServerTls};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const HTTP1: &[u8] = b"http/1.1";
const H2: &[u8] = b"h2";

/// Both ports over TLS with a certificate for localhost from a fresh authority (and client
/// certificates required from `client_ca` when given).
fn serve(
    name: &str,
    limits: ConnectionLimits,
    client_ca: Option<&Authority>,
) -> (Harness, Arc<ServerTls>, Authority) {
    let authority = Authority::new("test CA");
    let (files, _) = write_server_files(&scratch(name), &authority, 1, client_ca);
    let tls = Arc::new(ServerTls::load(files).unwrap());
    let harness = Harness::with_http_tls(1 << 20, limits, Arc::clone(&tls));
    (harness, tls, authority)
}

/// A TLS connection to `address` offering `config`'s protocols: the stream, the protocol
/// chosen and the certificate presented.
async fn open_tls(
    address: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<(TlsStream<TcpStream>, Option<Vec<u8>>, Vec<u8>)> {
    let tcp = TcpStream::connect(address).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (_, session) = tls.get_ref();
    let protocol = session.alpn_protocol().map(<[u8]>::to_vec);
    let presented = session.peer_certificates().unwrap()[0].to_vec();
    Ok((tls, protocol, presented))
}

/// `request` bytes written as they are, the whole answer read until the server closes.
async fn raw_exchange<S>(mut stream: S, request: &[u8]) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn infer_json() -> Vec<u8> {
    serde_json::json!({"id": "tls", "inputs": [{"name": "x", "shape": [1, 4],
        "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]})
    .to_string()
    .into_bytes()
}

fn post_infer(address: SocketAddr) -> Request<Full<Bytes>> {
    Request::post(format!("https://{address}/v2/models/m/infer"))
        .header("host", "localhost")
        .body(Full::new(Bytes::from(infer_json())))
        .unwrap()
}

/// The answer to `infer_json`: every byte of 1, 2, 3, 4 as FP32 doubled.
fn assert_doubled(body: &[u8]) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(value["id"], "tls");
    let expected: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .map(|b| b.wrapping_mul(2))
        .collect::<Vec<u8>>()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let data: Vec<f32> = value["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(data, expected);
}

#[test]
fn https_is_served_over_http1_and_h2_with_the_grpc_ports_certificate() {
    let (h, tls, authority) = serve("https", ConnectionLimits::default(), None);
    let address = h.frontend.http_address().unwrap();
    let config = client_config(&authority, None);
    h.run(async {
        // curl https://localhost:PORT/v2/health/live, byte for byte.
        let (stream, protocol, first) = open_tls(address, with_alpn(&config, &[H2, HTTP1]))
            .await
            .unwrap();
        assert_eq!(protocol.as_deref(), Some(H2), "h2 preferred when offered");
        drop(stream);
        let (stream, protocol, presented) = open_tls(address, with_alpn(&config, &[HTTP1]))
            .await
            .unwrap();
        assert_eq!(protocol.as_deref(), Some(HTTP1));
        assert_eq!(presented, first);
        let answer = raw_exchange(
            stream,
            b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\n\
              Accept: */*\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");

        // Inference over HTTP/1.1, then over h2, answered natively.
        let (stream, _, _) = open_tls(address, with_alpn(&config, &[HTTP1]))
            .await
            .unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        let response = sender.send_request(post_infer(address)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_doubled(&response.into_body().collect().await.unwrap().to_bytes());

        let (stream, _, _) = open_tls(address, with_alpn(&config, &[H2])).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                .handshake(TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let response = sender.send_request(post_infer(address)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_doubled(&response.into_body().collect().await.unwrap().to_bytes());

        // One reload covers both ports: new connections on each see the new certificate.
        let dir = scratch("https");
        let (_, second) = write_server_files(&dir, &authority, 2, None);
        assert_eq!(tls.files().cert, dir.join("server.crt"));
        tls.reload().unwrap();
        let (_, _, presented) = open_tls(address, with_alpn(&config, &[HTTP1]))
            .await
            .unwrap();
        assert_eq!(presented, second);
        let (_, _, presented) = open_tls(h.frontend.address(), Arc::clone(&config))
            .await
            .unwrap();
        assert_eq!(presented, second);
    });
    assert_eq!(h.calls(), 2);
}

#[test]
fn plain_http_to_an_https_port_is_answered_400_and_closed() {
    let (h, _, _) = serve("plain", ConnectionLimits::default(), None);
    let address = h.frontend.http_address().unwrap();
    h.run(async {
        let started = Instant::now();
        let stream = TcpStream::connect(address).await.unwrap();
        let request = format!(
            "POST /v2/models/m/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n",
            infer_json().len()
        );
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(&infer_json());
        // Read to the end: the server closes after its answer, well within the timeout.
        let answer = raw_exchange(stream, &bytes).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(answer.contains("this port speaks HTTPS only"), "{answer}");
        assert!(answer.contains("https://"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(2));
    });
    // Nothing reached the engine.
    assert_eq!(h.calls(), 0);
}

#[test]
fn mutual_tls_on_the_rest_port_refuses_clients_without_a_trusted_certificate() {
    let clients = Authority::new("client CA");
    let (h, _, servers) = serve("mutual", ConnectionLimits::default(), Some(&clients));
    let address = h.frontend.http_address().unwrap();
    let trusted = clients.leaf(7, true);
    let stranger = Authority::new("another CA").leaf(8, true);
    let ask = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    h.run(async {
        for identity in [None, Some(&stranger)] {
            let config = with_alpn(&client_config(&servers, identity), &[HTTP1]);
            // Under TLS 1.3 the refusal may come after the client's side finished: then the
            // request gets no answer.
            if let Ok((stream, _, _)) = open_tls(address, config).await {
                let answer = raw_exchange(stream, ask).await;
                assert!(!answer.contains("200 OK"), "served {identity:?}: {answer}");
            }
        }
        let config = with_alpn(&client_config(&servers, Some(&trusted)), &[HTTP1]);
        let (stream, _, _) = open_tls(address, config).await.unwrap();
        let answer = raw_exchange(stream, ask).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    });
}

#[test]
fn a_rest_client_that_never_finishes_the_tls_handshake_is_cut() {
    let limits = ConnectionLimits {
        handshake_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    };
    let (h, _, authority) = serve("silent", limits, None);
    let address = h.frontend.http_address().unwrap();
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
        // One finishes the handshake and never sends a request: the same timeout holds.
        let started = Instant::now();
        let config = with_alpn(&client_config(&authority, None), &[HTTP1]);
        let (mut stream, _, _) = open_tls(address, config).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let deadline = Instant::now() + Duration::from_secs(1);
        while h.frontend.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h.frontend.open_connections(), 0);
    });
}
