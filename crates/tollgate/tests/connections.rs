//! The open-connection bound (docs/quality.md, overload and memory): past
//! `TOLLGATE_MAX_CONNECTIONS`, a new connection is answered 503 with `Retry-After` and
//! closed; the connections already open keep working, and a closed one frees its slot.
//! An admitted connection gives its slot back when its client sends headers too slowly
//! (`TOLLGATE_HEADER_READ_TIMEOUT_MS`) or nothing at all (`TOLLGATE_IDLE_TIMEOUT_MS`).

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

/// A `tollgate serve` process, killed and reaped when dropped (also when a test fails).
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tollgate serve` with `env` and waits until it answers; returns it and its
/// address.
fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> (Served, String) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    cmd.arg("serve")
        .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TOLLGATE_DATA_DIR", dir.join("data"))
        .env("TOLLGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let served = Served(cmd.spawn().unwrap());
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            assert!(health(&mut s).starts_with("HTTP/1.1 200"));
            return (served, addr);
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server closed `s` (a read sees the end or an error) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before the close is fine
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true, // reset
        }
    }
}

#[test]
fn slow_headers_and_idle_connections_are_closed_and_give_their_slots_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_served, addr) = start(
        dir.path(),
        &[
            ("TOLLGATE_MAX_CONNECTIONS", "4"),
            ("TOLLGATE_HEADER_READ_TIMEOUT_MS", "1000"),
            ("TOLLGATE_IDLE_TIMEOUT_MS", "2000"),
        ],
    );

    // A busy client: a request every 200 ms for 5 s, well past the idle timeout.
    let mut busy = TcpStream::connect(&addr).unwrap();
    let busy_thread = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(5);
        let mut answered = 0;
        while Instant::now() < until {
            assert!(health(&mut busy).starts_with("HTTP/1.1 200"));
            answered += 1;
            std::thread::sleep(Duration::from_millis(200));
        }
        answered
    });

    // Slowloris: a header byte every 100 ms never completes the head; the header
    // timeout (not the idle timeout: bytes keep arriving) closes it.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /v1/health HTTP/1.1\r\nhost: t\r\n")
        .unwrap();
    let started = Instant::now();
    let mut trickled = 0;
    let slow_closed = loop {
        if slow.write_all(b"x").is_err() {
            break true;
        }
        trickled += 1;
        if closed_within(&mut slow, Duration::from_millis(100)) {
            break true;
        }
        if started.elapsed() > Duration::from_secs(15) {
            break false;
        }
    };
    assert!(slow_closed, "still open after {trickled} header bytes");

    // A connection that never sends a byte is closed by the idle timeout, and so is a
    // kept-alive one after its answer.
    let mut silent = TcpStream::connect(&addr).unwrap();
    let mut kept = TcpStream::connect(&addr).unwrap();
    assert!(health(&mut kept).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut silent, Duration::from_secs(15)),
        "the silent connection stayed open"
    );
    assert!(
        closed_within(&mut kept, Duration::from_secs(15)),
        "the idle kept-alive connection stayed open"
    );

    // The busy one was never cut off.
    let answered = busy_thread.join().unwrap();
    assert!(answered >= 10, "{answered}");

    // Every slot comes back: four connections are admitted again. The busy client
    // closed its own connection as its thread ended; the server gives that slot back
    // once it reads the close, so allow it a moment.
    drop((slow, silent, kept));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fresh: Vec<TcpStream> =
            (0..4).map(|_| TcpStream::connect(&addr).unwrap()).collect();
        let heads: Vec<String> = fresh.iter_mut().map(health).collect();
        if heads.iter().all(|h| h.starts_with("HTTP/1.1 200")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a slot did not come back: {heads:?}"
        );
        drop(fresh);
        std::thread::sleep(Duration::from_millis(100));
    }
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
