//! The open-connection bound (quality.md, overload and memory): past
//! `TOLLGATE_MAX_CONNECTIONS`, a new connection is answered 503 with `Retry-After` and
//! closed; the connections already open keep working, and a closed one frees its slot.

#![cfg(unix)]

mod common;
use common::free_port;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends one keep-alive `GET /v1/health` on `s` and returns the status line and the
/// whole head.
fn health(s: &mut TcpStream) -> String {
    s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: t\r\n\r\n")
        .unwrap();
    read_head(s)
}

fn read_head(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!("connection ended before a head: {other:?} after {buf:?}"),
        }
    }
    // The body: content-length bytes.
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    format!("{head}{}", String::from_utf8_lossy(&body))
}

#[test]
fn a_connection_past_the_bound_gets_503_with_retry_after_and_open_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
        .env("TOLLGATE_LOG", "warn")
        .env("TOLLGATE_MAX_CONNECTIONS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut first = loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let head = health(&mut s);
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            break s;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut second = TcpStream::connect(&addr).unwrap();
    assert!(health(&mut second).starts_with("HTTP/1.1 200"));

    // Two are open: the third is refused, with the JSON error shape and Retry-After.
    let mut third = TcpStream::connect(&addr).unwrap();
    let refused = health(&mut third);
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    let lower = refused.to_ascii_lowercase();
    assert!(lower.contains("retry-after: 1\r\n"), "{refused}");
    assert!(lower.contains("connection: close\r\n"), "{refused}");
    assert!(refused.contains(r#""error":"overloaded""#), "{refused}");
    let mut rest = Vec::new();
    assert_eq!(
        third.read_to_end(&mut rest).unwrap(),
        0,
        "closed after the answer"
    );

    // The open ones are unaffected.
    assert!(health(&mut first).starts_with("HTTP/1.1 200"));
    assert!(health(&mut second).starts_with("HTTP/1.1 200"));

    // Closing one frees its slot.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = TcpStream::connect(&addr).unwrap();
        let head = health(&mut s);
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was not freed: {head}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
