//! Empty: this package exists to build `../benches/peer.rs` (see `Cargo.toml`).
