//! Helpers shared by the tests that run `tollgate serve` as a process.

use std::net::TcpListener;

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
