//! Helpers shared by the tests that run `tollgate serve` as a process: a free port, a
//! real server on it, and the CLI run against it.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `tollgate` binary with `args`, no server variables.
pub fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .env_remove("TOLLGATE_URL")
        .env_remove("TOLLGATE_API_KEY")
        .env_remove("TOLLGATE_DATA_DIR")
        .output()
        .unwrap()
}

/// Standard output and error, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The example policies of the repository.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/policies")
}

pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub admin: String,
    pub test_key: String,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `tollgate serve` with its data in a fresh directory and waits until it
    /// answers and has written its bootstrap keys.
    pub fn start() -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), &[])
    }

    /// Starts `tollgate serve` on the data in `dir` (fresh or left by an earlier
    /// server), with extra environment variables, on a new port.
    pub fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .arg("serve")
            .env("TOLLGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_DATA_DIR", dir.path().join("data"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let boot = dir.path().join("data/bootstrap-keys.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        let keys = loop {
            if let Ok(text) = std::fs::read_to_string(&boot)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break v;
            }
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            admin: keys["admin_key"]["secret"].as_str().unwrap().to_owned(),
            test_key: keys["test_key"]["secret"].as_str().unwrap().to_owned(),
            dir,
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The CLI against this server with `key`.
    pub fn run(&self, key: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tollgate"))
            .args(args)
            .env("TOLLGATE_URL", &self.url)
            .env("TOLLGATE_API_KEY", key)
            .env_remove("TOLLGATE_DATA_DIR")
            .output()
            .unwrap()
    }

    /// Stops the server (SIGTERM: a graceful shutdown; SIGKILL after 20 s) and waits
    /// for it. Its data directory stays.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Stops the server and hands back its directory, to start another on it.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, placeholder)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
