//! The console's static files, embedded in the binary and served at
//! `/console/assets/{name}.{hash}.{ext}` with `hash` = the first 16 hex digits of the
//! SHA-256 of the bytes, cached for a year (`immutable`). A wrong hash is a 404.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// `htmx`, `console`, …
    pub name: &'static str,
    /// `js` or `css`.
    pub ext: &'static str,
    /// The bytes.
    pub bytes: &'static [u8],
    /// First 16 hex digits of their SHA-256.
    pub hash: String,
    /// The URL path it is served at.
    pub url: String,
}

fn asset(name: &'static str, ext: &'static str, bytes: &'static [u8]) -> Asset {
    let hash: String = hex::encode(Sha256::digest(bytes))
        .chars()
        .take(16)
        .collect();
    let url = format!("/console/assets/{name}.{hash}.{ext}");
    Asset {
        name,
        ext,
        bytes,
        hash,
        url,
    }
}

/// Every embedded asset, hashed once.
pub static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    vec![
        asset(
            "htmx",
            "js",
            include_bytes!("../../assets/vendor/htmx.min.js"),
        ),
        asset(
            "htmx-ext-sse",
            "js",
            include_bytes!("../../assets/vendor/htmx-ext-sse.min.js"),
        ),
        asset("console", "js", include_bytes!("../../assets/console.js")),
        asset("console", "css", include_bytes!("../../assets/console.css")),
    ]
});

/// The URL of asset `name`.`ext` (empty if there is none: a template bug, visible).
pub fn url(name: &str, ext: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|a| a.name == name && a.ext == ext)
        .map_or("", |a| a.url.as_str())
}

/// `GET /console/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    let found = file.rsplit_once('.').and_then(|(stem, ext)| {
        let (name, hash) = stem.rsplit_once('.')?;
        ASSETS
            .iter()
            .find(|a| a.name == name && a.ext == ext && a.hash == hash)
    });
    let Some(a) = found else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let content_type = match a.ext {
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        a.bytes,
    )
        .into_response()
}
