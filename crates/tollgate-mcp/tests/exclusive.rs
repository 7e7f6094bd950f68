//! The gateway and a server never write one data directory at once: while a Tollgate
//! server holds a data directory, the gateway's embedded mode refuses it with an error
//! that names the directory and points at `tollgate_url`; once the server is gone, the
//! gateway opens it.

use tollgate_mcp::backend::open_embedded;
use tollgate_server::{App, Config};

#[test]
fn the_gateway_refuses_a_data_dir_a_server_is_writing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = App::open(Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    })
    .expect("the server opens its data directory");

    let refused = match open_embedded(dir.path(), None, "default") {
        Ok(_) => panic!("the gateway opened a data directory a server holds"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        refused.contains(&dir.path().display().to_string()),
        "{refused}"
    );
    assert!(refused.contains("tollgate_url"), "{refused}");
    assert!(
        refused.contains("in use by another Tollgate process"),
        "{refused}"
    );

    drop(server);
    let opened = open_embedded(dir.path(), None, "default");
    assert!(
        opened.is_ok(),
        "after the server stopped: {:?}",
        opened.err()
    );
}
