//! The operator console through the router (no browser; the browser scenarios are in
//! `crates/tollgate/tests/console_browser.rs`): sessions and their expiry, CSRF, the
//! headers of every response, hashed assets, the `read` scope on the API, the stream's
//! pages by ledger position, and content negotiation of decision links.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

use common::{Harness, in_band};

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

async fn send(
    h: &Harness,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Page {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let req = match form {
        Some(f) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = h.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Page {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn enc(s: &str) -> String {
    serde_urlencoded::to_string([("k", s)]).unwrap()[2..].to_owned()
}

/// Signs in with `key`; returns the `tg_session=…` cookie.
async fn sign_in(h: &Harness, key: &str) -> String {
    let p = send(
        h,
        Method::POST,
        "/console/login",
        None,
        Some(&format!("key={}", enc(key))),
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let set = p.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/console"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    set.split(';').next().unwrap().to_owned()
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

async fn key_with(h: &Harness, scopes: serde_json::Value) -> String {
    let r = h
        .post(
            "/v1/admin/keys",
            &h.admin,
            json!({"scopes": scopes, "environment": "test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["secret"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_console_response_carries_the_security_headers() {
    let h = Harness::new();
    let cookie = sign_in(&h, &h.admin).await;
    for (path, cookie, status) in [
        ("/console/login", None, StatusCode::OK),
        ("/console", Some(cookie.as_str()), StatusCode::OK),
        ("/console/decisions", Some(cookie.as_str()), StatusCode::OK),
        (
            "/console/decisions/dec_nope",
            Some(cookie.as_str()),
            StatusCode::NOT_FOUND,
        ),
        (
            "/console/no/such/page",
            Some(cookie.as_str()),
            StatusCode::NOT_FOUND,
        ),
        ("/console/keys", None, StatusCode::SEE_OTHER),
    ] {
        let p = send(&h, Method::GET, path, cookie, None).await;
        assert_eq!(p.status, status, "{path}");
        let csp = p.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(csp, tollgate_server::console::CSP, "{path}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(p.headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        assert_eq!(p.headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(
            p.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
        assert_eq!(p.headers[header::CACHE_CONTROL], "no-store", "{path}");
        if status == StatusCode::NOT_FOUND {
            assert!(
                p.headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html"),
                "{path}: an HTML page, not JSON"
            );
        }
    }
}

#[tokio::test]
async fn assets_are_served_by_content_hash_and_cached_for_good() {
    let h = Harness::new();
    for a in tollgate_server::console::assets::ASSETS.iter() {
        let p = send(&h, Method::GET, &a.url, None, None).await;
        assert_eq!(p.status, StatusCode::OK, "{}", a.url);
        assert_eq!(
            p.headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(p.text.len(), a.bytes.len());
        let wrong = a.url.replace(&a.hash, "0123456789abcdef");
        assert_eq!(
            send(&h, Method::GET, &wrong, None, None).await.status,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_age_and_with_their_key() {
    let h = Harness::with_config(|c| {
        c.console_session_idle_s = 60;
        c.console_session_max_s = 150;
    });
    let cookie = sign_in(&h, &h.admin).await;
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );
    // Used every 50 s it stays alive until its absolute age.
    h.clock.advance(50_000);
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );
    h.clock.advance(50_000);
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );
    h.clock.advance(51_000);
    let p = send(&h, Method::GET, "/console", Some(&cookie), None).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.headers[header::LOCATION], "/console/login");

    let cookie = sign_in(&h, &h.admin).await;
    h.clock.advance(61_000);
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::SEE_OTHER,
        "idle"
    );

    // Revoking the key ends its sessions at once.
    let reader = key_with(&h, json!(["read"])).await;
    let cookie = sign_in(&h, &reader).await;
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::OK
    );
    let keys = h.get("/v1/admin/keys", &h.admin).await;
    let id = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["scopes"] == json!(["read"]))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        h.post(&format!("/v1/admin/keys/{id}/revoke"), &h.admin, json!({}))
            .await
            .status
            .is_success()
    );
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_changes_nothing() {
    let h = Harness::new();
    let cookie = sign_in(&h, &h.admin).await;
    let page = send(&h, Method::GET, "/console/overrides", Some(&cookie), None).await;
    let csrf = csrf_of(&page.text);
    for form in [
        "scope=tenant&reason=forged".to_owned(),
        format!("scope=tenant&reason=forged&csrf={}", "0".repeat(64)),
        "scope=tenant&reason=forged&csrf=".to_owned(),
    ] {
        let p = send(
            &h,
            Method::POST,
            "/console/overrides",
            Some(&cookie),
            Some(&form),
        )
        .await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{form}");
    }
    assert_eq!(
        h.get("/v1/admin/overrides", &h.admin).await.body["overrides"],
        json!([])
    );
    // Another session's token is not this one's.
    let other = sign_in(&h, &h.admin).await;
    let p = send(
        &h,
        Method::POST,
        "/console/overrides",
        Some(&other),
        Some(&format!("scope=tenant&reason=x&csrf={csrf}")),
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    // With it, the override is set (and blocks the next request).
    let p = send(
        &h,
        Method::POST,
        "/console/overrides",
        Some(&cookie),
        Some(&format!("scope=tenant&reason=stop&csrf={csrf}")),
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let r = h.decide(&h.test_key, in_band()).await;
    assert_eq!(r.body["status"], "BLOCK", "{}", r.text);
    assert_eq!(r.body["gate"], "override");
    // Sign-out needs the token too, and then the session is gone.
    let p = send(
        &h,
        Method::POST,
        "/console/logout",
        Some(&cookie),
        Some("csrf="),
    )
    .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = send(
        &h,
        Method::POST,
        "/console/logout",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&h, Method::GET, "/console", Some(&cookie), None)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_read_key_reads_the_api_and_changes_nothing() {
    let h = Harness::new();
    let reader = key_with(&h, json!(["read"])).await;
    for path in [
        "/v1/reviews",
        "/v1/admin/keys",
        "/v1/admin/overrides",
        "/v1/admin/sources",
        "/v1/admin/policies",
        "/v1/admin/tenants",
        "/v1/audit/verify",
        "/v1/audit/export",
    ] {
        let r = h.get(path, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    for (path, body) in [
        ("/v1/decisions", in_band()),
        (
            "/v1/admin/overrides",
            json!({"scope": "tenant", "reason": "x"}),
        ),
        ("/v1/admin/keys", json!({"scopes": ["admin"]})),
        (
            "/v1/admin/policies",
            json!({"text": "id: p\ndefault_effect: allow\nrules: []\n"}),
        ),
        ("/v1/admin/shadow", json!({"enabled": true})),
    ] {
        let r = h.post(path, &reader, body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.text);
    }
    // A key with only `decide` still cannot read the admin API.
    assert_eq!(
        h.get("/v1/admin/keys", &h.test_key).await.status,
        StatusCode::FORBIDDEN
    );
    // A read key signs in to the console; a decide-only key does not.
    sign_in(&h, &reader).await;
    let p = send(
        &h,
        Method::POST,
        "/console/login",
        None,
        Some(&format!("key={}", enc(&h.test_key))),
    )
    .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.text.contains("admin, review or read"));
}

#[tokio::test]
async fn the_stream_pages_back_by_ledger_position() {
    let h = Harness::new();
    let mut ids = Vec::new();
    for i in 0..120 {
        let mut body = in_band();
        body["actor"]["id"] = json!(format!("agent-{}", i % 3));
        let r = h.decide(&h.test_key, body).await;
        ids.push(r.body["decision_id"].as_str().unwrap().to_owned());
    }
    let cookie = sign_in(&h, &h.admin).await;
    let mut seen = Vec::new();
    let mut path = "/console/decisions".to_owned();
    loop {
        let p = send(&h, Method::GET, &path, Some(&cookie), None).await;
        assert_eq!(p.status, StatusCode::OK);
        let rows: Vec<String> = p
            .text
            .match_indices("href=\"/console/decisions/dec_")
            .map(|(at, _)| p.text[at + 25..at + 25 + 36].to_owned())
            .collect();
        assert!(rows.len() <= 50);
        seen.extend(rows);
        let Some(at) = p.text.find("id=\"older\" href=\"") else {
            break;
        };
        let rest = &p.text[at + 17..];
        path = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
    }
    ids.reverse();
    assert_eq!(seen, ids, "every decision once, newest first");
    // Filtered: only agent-1's, still newest first.
    let p = send(
        &h,
        Method::GET,
        "/console/decisions?actor=agent-1",
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(
        p.text.matches("<td class=\"actor\">agent-1</td>").count(),
        40
    );
    assert_eq!(
        p.text.matches("<td class=\"actor\">agent-0</td>").count(),
        0
    );
}

#[tokio::test]
async fn decision_links_open_the_console_in_a_browser_and_json_elsewhere() {
    let h = Harness::new();
    let r = h.decide(&h.test_key, in_band()).await;
    let id = r.body["decision_id"].as_str().unwrap().to_owned();
    for path in [format!("/v1/dossiers/{id}"), format!("/v1/decisions/{id}")] {
        let browser = h
            .call_raw(
                Method::GET,
                &path,
                None,
                None,
                &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
            )
            .await;
        assert_eq!(browser.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(
            browser.headers[header::LOCATION],
            format!("/console/decisions/{id}")
        );
        for accept in [
            "application/json",
            "*/*",
            "application/json, text/html;q=0.5",
        ] {
            let api = h
                .call_raw(
                    Method::GET,
                    &path,
                    Some(&h.test_key),
                    None,
                    &[("accept", accept)],
                )
                .await;
            assert_eq!(api.status, StatusCode::OK, "{path} {accept}");
            assert_eq!(api.body["decision_id"], json!(id));
        }
        let plain = h.get(&path, &h.test_key).await;
        assert_eq!(plain.status, StatusCode::OK);
    }
    // Another tenant's id is a 404 page in the console.
    let (other_admin, _, _) = h.tenant("other").await;
    let cookie = sign_in(&h, &other_admin).await;
    let p = send(
        &h,
        Method::GET,
        &format!("/console/decisions/{id}"),
        Some(&cookie),
        None,
    )
    .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(!p.text.contains("agent-1"));
}
