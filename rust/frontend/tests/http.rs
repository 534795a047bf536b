//! The REST port end to end: HTTP/1.1 (keep-alive) and h2c clients on TCP against the stand-in
//! engine of model "m" (FP32 [-1, 4], every byte doubled) and the stand-in Python backend.
//! JSON and binary requests are answered natively, what the native path does not take goes to
//! the backend's ModelInfer, bodies over the limit are refused before they are read, and
//! bodies are compressed both ways (Content-Encoding, Accept-Encoding) as tritonclient.http
//! asks.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// One exchange: status, `Inference-Header-Content-Length` if any, `Content-Encoding` if
/// any, body.
struct Answer {
    status: StatusCode,
    header_length: Option<usize>,
    content_encoding: Option<String>,
    body: Bytes,
}

async fn http1(address: std::net::SocketAddr, request: Request<Full<Bytes>>) -> Answer {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    read(sender.send_request(request).await.unwrap()).await
}

async fn read(response: http::Response<hyper::body::Incoming>) -> Answer {
    let status = response.status();
    let header_length = response
        .headers()
        .get("inference-header-content-length")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    let content_encoding = response
        .headers()
        .get("content-encoding")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        header_length,
        content_encoding,
        body,
    }
}

fn post(address: std::net::SocketAddr, path: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::post(format!("http://{address}{path}"))
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn doubled(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .map(|b| b.wrapping_mul(2))
        .collect()
}

#[test]
fn json_and_binary_requests_are_answered_natively() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    let values = [0.5f32, 1.0, -2.0, 3.25, 0.0, 7.0, 8.0, 9.0];
    let answer = h.run(async {
        let json = serde_json::json!({"id": "a",
            "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [values[..4], values[4..]]}]});
        http1(address, post(address, "/v2/models/m/infer", json.to_string().into_bytes())).await
    });
    assert_eq!(answer.status, StatusCode::OK);
    let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(value["id"], "a");
    assert_eq!(value["model_version"], "1");
    assert_eq!(value["outputs"][0]["shape"], serde_json::json!([2, 4]));
    let data: Vec<f32> = value["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(
        data.iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
        doubled(&values)
    );

    // Binary in, binary out.
    let header = serde_json::json!({"parameters": {"binary_data_output": true},
        "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": 32}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    let answer = h.run(async {
        let mut request = post(address, "/v2/models/m/versions/1/infer", body);
        request.headers_mut().insert(
            "inference-header-content-length",
            header.len().to_string().parse().unwrap(),
        );
        http1(address, request).await
    });
    assert_eq!(answer.status, StatusCode::OK);
    let length = answer.header_length.unwrap();
    let head: serde_json::Value = serde_json::from_slice(&answer.body[..length]).unwrap();
    assert_eq!(head["outputs"][0]["parameters"]["binary_data_size"], 32);
    assert_eq!(&answer.body[length..], doubled(&values).as_slice());
    assert_eq!(h.calls(), 2);
}

#[test]
fn h2c_is_served_on_the_same_port() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    let answer = h.run(async {
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let json = br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0,0,0,0]}]}"#;
        read(
            sender
                .send_request(post(address, "/v2/models/m/infer", json.to_vec()))
                .await
                .unwrap(),
        )
        .await
    });
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(h.calls(), 1);
}

#[test]
fn what_the_native_path_does_not_take_goes_to_the_backends_model_infer() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    // A datatype the signature does not have: the Python server's general path words it (the
    // stand-in backend echoes the call, which is not a ModelInferResponse).
    let answer = h.run(async {
        let json =
            br#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]}]}"#;
        http1(address, post(address, "/v2/models/m/infer", json.to_vec())).await
    });
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("not a ModelInferResponse"),
        "{error}"
    );
    assert_eq!(h.calls(), 0);
}

#[test]
fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let h = Harness::start(true, 1024);
    let address = h.frontend.http_address().unwrap();
    let answer = h.run(async {
        http1(
            address,
            post(address, "/v2/models/m/infer", vec![b' '; 4096]),
        )
        .await
    });
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("(4096 vs. 1024)"),
        "{error}"
    );
}

#[test]
fn a_missing_backend_is_503_with_the_grpc_wording() {
    let h = Harness::start(false, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    let answer = h.run(async {
        let request = Request::get(format!("http://{address}/v2/health/ready"))
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        http1(address, request).await
    });
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("Python gRPC backend is not reachable"),
        "{error}"
    );
}

/// `data` compressed as `Content-Encoding: coding` means it (deflate: zlib, RFC 9110 8.4.1.2).
fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};
    match coding {
        "gzip" => {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        "deflate" => {
            let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        other => panic!("no coding {other}"),
    }
}

fn inflate(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(data).read_to_end(&mut out),
        other => panic!("no coding {other}"),
    }
    .unwrap();
    out
}

/// A binary request of 8 rows (binary outputs), with its header length.
fn binary_request(rows: usize) -> (Vec<u8>, usize) {
    let header = serde_json::json!({"id": "z", "parameters": {"binary_data_output": true},
        "inputs": [{"name": "x", "shape": [rows, 4], "datatype": "FP32",
                    "parameters": {"binary_data_size": rows * 16}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend((0..rows * 4).flat_map(|i| (i as f32 * 0.25).to_le_bytes()));
    (body, header.len())
}

#[test]
fn compressed_requests_and_answers_carry_the_same_bytes_as_plain_ones() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    let (body, header_length) = binary_request(8);
    let send = |body: Vec<u8>, headers: &[(&'static str, &str)]| {
        let mut request = post(address, "/v2/models/m/infer", body);
        request.headers_mut().insert(
            "inference-header-content-length",
            header_length.to_string().parse().unwrap(),
        );
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().unwrap());
        }
        request
    };
    let plain = h.run(http1(address, send(body.clone(), &[])));
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.content_encoding, None);
    for coding in ["gzip", "deflate"] {
        // Compressed request (the header length counts the inflated body, as Triton's).
        let compressed = compress(coding, &body);
        let answer = h.run(http1(
            address,
            send(compressed.clone(), &[("content-encoding", coding)]),
        ));
        assert_eq!(answer.status, StatusCode::OK, "{coding}");
        assert_eq!(answer.body, plain.body, "{coding}");
        // Compressed answer.
        let answer = h.run(http1(
            address,
            send(body.clone(), &[("accept-encoding", coding)]),
        ));
        assert_eq!(answer.content_encoding.as_deref(), Some(coding));
        assert_eq!(answer.header_length, plain.header_length);
        assert_eq!(inflate(coding, &answer.body), plain.body, "{coding}");
        // Both.
        let answer = h.run(http1(
            address,
            send(
                compressed,
                &[("content-encoding", coding), ("accept-encoding", coding)],
            ),
        ));
        assert_eq!(inflate(coding, &answer.body), plain.body, "{coding}");
    }
    // Every answer was the engine's: nothing went to the backend.
    assert_eq!(h.calls(), 7);
}

#[test]
fn a_body_in_an_unknown_coding_is_415_and_one_that_does_not_inflate_400() {
    let h = Harness::start(true, 1 << 20);
    let address = h.frontend.http_address().unwrap();
    let (body, _) = binary_request(1);
    let answer = h.run(async {
        let mut request = post(address, "/v2/models/m/infer", body.clone());
        request
            .headers_mut()
            .insert("content-encoding", "br".parse().unwrap());
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    });
    assert_eq!(answer.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.headers()["accept-encoding"], "gzip, deflate");
    let answer = h.run(async {
        let mut request = post(address, "/v2/models/m/infer", b"not gzip at all".to_vec());
        request
            .headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
        http1(address, request).await
    });
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let error: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("does not inflate"),
        "{error}"
    );
    assert_eq!(h.calls(), 0);
}
