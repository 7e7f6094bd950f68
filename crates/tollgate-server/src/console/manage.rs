//! The pages where people change things: the review queue, policies (versions, text,
//! diff, activate and roll back), overrides, keys, and the ledger (verify now). Each
//! POST checks the session's CSRF token here and the key's scope in the service (the
//! same method the API calls); the templates leave out the controls a key may not
//! use.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tollgate_core::{Override, OverrideScope};

use super::pages::{asked, check_post, encode_path, review_view};
use super::session::User;
use super::text::Text;
use super::views::{
    self, CheckpointView, Chrome, ConfirmPage, KeyView, KeysPage, LedgerPage, OverrideView,
    OverridesPage, PoliciesPage, PolicyPage, PolicyRow, ReviewsPage, VersionView,
};
use super::{ConsoleState, PageError};
use crate::service::Error;
use crate::service::auth::SCOPES;

/// A service input type from the fields a form gave (the same typed decoding, with
/// the same errors, as the API's JSON bodies).
fn input<T: DeserializeOwned>(v: Value) -> Result<T, PageError> {
    Ok(crate::service::body::decode(v)?)
}

/// The form fields of a POST body, repeated names kept (`scope=a&scope=b`).
fn fields(body: &Bytes) -> Result<Vec<(String, String)>, PageError> {
    serde_urlencoded::from_bytes(body).map_err(|e| {
        PageError::Service(Error::field(
            &["body"],
            format!("not a form: {e}"),
            "value_error",
        ))
    })
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// Reads a POST form and checks its origin and CSRF token.
fn checked_form(
    user: &User,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<(String, String)>, PageError> {
    let f = fields(body)?;
    check_post(user, headers, field(&f, "csrf"))?;
    Ok(f)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// The notice of a finished action (a fixed text: nothing from the query is shown).
fn notice(done: &Done) -> Option<&'static str> {
    Some(match done.done.as_deref()? {
        "approved" => "Approval recorded.",
        "rejected" => "Rejection recorded.",
        "activated" => "Version activated; the next request uses it.",
        "unchanged" => "That version was already active.",
        "set" => "Override engaged; the next matching request is blocked.",
        "cleared" => "Override cleared.",
        "revoked" => "Key revoked.",
        _ => return None,
    })
}

/// `GET /console/reviews`: the queue.
pub(crate) async fn reviews(
    State(state): State<ConsoleState>,
    user: User,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let list = state.app.service().list_reviews(&user.caller, None).await?;
    let mut pending = Vec::new();
    let mut resolved = Vec::new();
    // Newest first.
    for r in list.iter().rev() {
        let decision = r["decision_id"].as_str().unwrap_or_default();
        let what = asked(&state, &user.caller, decision);
        let v = review_view(r, Some(&what));
        if v.pending {
            pending.push(v);
        } else if resolved.len() < 100 {
            resolved.push(v);
        }
    }
    Ok(views::page(&ReviewsPage {
        chrome: Chrome::new("Reviews", "reviews", Some(&user)),
        pending,
        resolved,
        notice: notice(&done),
    })?)
}

/// `POST /console/reviews/{id}/approve|reject` with `comment`.
pub(crate) async fn resolve_review(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = checked_form(&user, &headers, &body)?;
    let approve = match action.as_str() {
        "approve" => true,
        "reject" => false,
        _ => return Err(PageError::Service(Error::NotFound)),
    };
    let comment = field(&f, "comment").trim();
    let resolution = input(if comment.is_empty() {
        json!({})
    } else {
        json!({"comment": comment})
    })?;
    state
        .app
        .service()
        .resolve_review(&user.caller, &id, resolution, approve)
        .await?;
    let done = if approve { "approved" } else { "rejected" };
    Ok(Redirect::to(&format!("/console/reviews?done={done}")).into_response())
}

/// `GET /console/policies`.
pub(crate) async fn policies(
    State(state): State<ConsoleState>,
    user: User,
) -> Result<Response, PageError> {
    let list = state
        .app
        .service()
        .list(&user.caller, input(json!({}))?)
        .await?;
    let s = |v: &Value| match v {
        Value::Null => "–".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let policies = list["policies"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    let id = p["policy_id"].as_str().unwrap_or_default();
                    PolicyRow {
                        id: Text::of(id),
                        url_id: encode_path(id),
                        latest: s(&p["latest_version"]),
                        versions: s(&p["versions"]),
                        active_live: s(&p["active"]["live"]),
                        active_test: s(&p["active"]["test"]),
                        candidate: format!(
                            "live {} · test {}",
                            s(&p["candidate"]["live"]),
                            s(&p["candidate"]["test"])
                        ),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(views::page(&PoliciesPage {
        chrome: Chrome::new("Policies", "policies", Some(&user)),
        policies,
        default_live: Text::of(s(&list["default_policy"]["live"])),
        default_test: Text::of(s(&list["default_policy"]["test"])),
    })?)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PolicyQuery {
    #[serde(default)]
    env: Option<String>,
    #[serde(default)]
    show: Option<u64>,
    #[serde(default)]
    from: Option<u64>,
    #[serde(default)]
    to: Option<u64>,
    #[serde(default)]
    done: Option<String>,
}

/// The environment a policy page looks at (`test` unless `live` is asked for).
fn env_of(v: Option<&str>) -> &'static str {
    if v == Some("live") { "live" } else { "test" }
}

/// `GET /console/policies/{id}`: versions, the text of one, a diff of two, the
/// candidate report, and Activate / Roll back for admins.
pub(crate) async fn policy(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
    Query(q): Query<PolicyQuery>,
) -> Result<Response, PageError> {
    let service = state.app.service();
    let caller = &user.caller;
    let env = env_of(q.env.as_deref());
    let shown = service.show(caller, id.clone(), input(json!({}))?).await?;
    let active = shown["active"][env].as_u64();
    let versions: Vec<VersionView> = shown["versions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    let n = v["version"].as_u64().unwrap_or(0);
                    let envs: Vec<&str> = ["live", "test"]
                        .into_iter()
                        .filter(|e| shown["active"][*e].as_u64() == Some(n))
                        .collect();
                    VersionView {
                        version: n,
                        sha: v["text_sha256"].as_str().unwrap_or_default().to_owned(),
                        created: Text::of(v["created_at"].as_str().unwrap_or_default()),
                        active_in: envs.join(", "),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let latest = versions.last().map_or(1, |v| v.version);
    let show = q.show.or(active).unwrap_or(latest);
    let text = service
        .version(caller, (id.clone(), show), input(json!({}))?)
        .await
        .map(|v| v["text"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|_| format!("(version {show} does not exist)"));
    let diff_to = q.to.unwrap_or(latest);
    let diff_from = q.from.unwrap_or(diff_to.saturating_sub(1).max(1));
    let diff = service
        .diff(
            caller,
            id.clone(),
            input(json!({"from": diff_from, "to": diff_to}))?,
        )
        .await;
    let names = |d: &Value, k: &str| {
        Text::of(
            d["rules"][k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "none".to_owned()),
        )
    };
    let (diff_text, added, removed, changed) = match &diff {
        Ok(d) => (
            Text::of(d["text_diff"].as_str().unwrap_or_default()),
            names(d, "added"),
            names(d, "removed"),
            names(d, "changed"),
        ),
        Err(e) => (
            Text::of(format!("no diff: {e}")),
            Text::default(),
            Text::default(),
            Text::default(),
        ),
    };
    let report = match service
        .candidate_report(caller, id.clone(), input(json!({"environment": env}))?)
        .await
    {
        Ok(r) => Text::json(&r),
        Err(Error::NotFound) => Text::of(format!("No candidate is running in {env}.")),
        Err(e) => Text::of(e.to_string()),
    };
    Ok(views::page(&PolicyPage {
        chrome: Chrome::new(format!("Policy {id}"), "policies", Some(&user)),
        url_id: encode_path(&id),
        id: Text::of(id),
        env: env.to_owned(),
        active,
        versions,
        shown: show,
        text: Text::of(text),
        diff_from,
        diff_to,
        diff: diff_text,
        rules_added: added,
        rules_removed: removed,
        rules_changed: changed,
        report,
        notice: notice(&Done { done: q.done }),
    })?)
}

/// `POST /console/policies/{id}/activate` (`version`, `env`): without `confirm=yes`
/// it answers the confirmation page and changes nothing; with it, activates (an
/// older version: a roll back).
pub(crate) async fn activate(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = checked_form(&user, &headers, &body)?;
    user.caller.require("admin")?;
    let service = state.app.service();
    let env = env_of(Some(field(&f, "env")));
    let version: u64 = field(&f, "version").parse().map_err(|_| {
        PageError::Service(Error::field(
            &["body", "version"],
            "a version number",
            "value_error",
        ))
    })?;
    if field(&f, "confirm") != "yes" {
        let shown = service
            .show(&user.caller, id.clone(), input(json!({}))?)
            .await?;
        let active = shown["active"][env].as_u64();
        return Ok(views::page(&ConfirmPage {
            chrome: Chrome::new(format!("Policy {id}"), "policies", Some(&user)),
            url_id: encode_path(&id),
            id: Text::of(id),
            version,
            env: env.to_owned(),
            active,
            rollback: active.is_some_and(|a| version < a),
        })?);
    }
    let out = service
        .activate(
            &user.caller,
            id.clone(),
            input(json!({"version": version, "environment": env}))?,
        )
        .await?;
    let done = if out["changed"] == json!(false) {
        "unchanged"
    } else {
        "activated"
    };
    Ok(Redirect::to(&format!(
        "/console/policies/{}?env={env}&done={done}",
        encode_path(&id)
    ))
    .into_response())
}

/// `GET /console/overrides`.
pub(crate) async fn overrides(
    State(state): State<ConsoleState>,
    user: User,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    let list = state.app.service().list_overrides(&user.caller).await?;
    let overrides = list["overrides"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| serde_json::from_value::<Override>(o.clone()).ok())
                .map(|o| OverrideView {
                    url_id: encode_path(&o.id),
                    id: Text::of(o.id),
                    scope: Text::of(match o.scope {
                        OverrideScope::Tenant => "tenant (everything)".to_owned(),
                        OverrideScope::Actor(a) => format!("actor = {a}"),
                        OverrideScope::ActionType(a) => format!("action type = {a}"),
                        OverrideScope::Source(s) => format!("source = {s}"),
                    }),
                    reason: Text::of(o.reason),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(views::page(&OverridesPage {
        chrome: Chrome::new("Overrides", "overrides", Some(&user)),
        overrides,
        notice: notice(&done),
    })?)
}

/// `POST /console/overrides` (`scope`, `value`, `reason`): engages a kill switch.
pub(crate) async fn set_override(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = checked_form(&user, &headers, &body)?;
    let value = field(&f, "value").trim();
    let mut req = json!({"scope": field(&f, "scope"), "reason": field(&f, "reason").trim()});
    if !value.is_empty() {
        req["value"] = json!(value);
    }
    state
        .app
        .service()
        .set_override(&user.caller, input(req)?)
        .await?;
    Ok(Redirect::to("/console/overrides?done=set").into_response())
}

/// `POST /console/overrides/{id}/clear`.
pub(crate) async fn clear_override(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    checked_form(&user, &headers, &body)?;
    state.app.service().clear_override(&user.caller, id).await?;
    Ok(Redirect::to("/console/overrides?done=cleared").into_response())
}

async fn keys_page(
    state: &ConsoleState,
    user: &User,
    created: Option<(String, String)>,
    done: &Done,
) -> Result<Response, PageError> {
    let list = state
        .app
        .service()
        .list_keys(&user.caller, input(json!({}))?)
        .await?;
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let keys = list["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| {
                    let id = s(&k["id"]);
                    KeyView {
                        url_id: encode_path(&id),
                        is_self: id == user.caller.key.id,
                        id: Text::of(id),
                        name: Text::of(s(&k["name"])),
                        environment: Text::of(s(&k["environment"])),
                        scopes: Text::of(
                            k["scopes"]
                                .as_array()
                                .map(|a| {
                                    a.iter()
                                        .filter_map(Value::as_str)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                })
                                .unwrap_or_default(),
                        ),
                        created: Text::of(s(&k["created_at"])),
                        revoked: Text::of(s(&k["revoked_at"])),
                        is_revoked: !k["revoked_at"].is_null(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let (created_id, created_secret) = match created {
        Some((id, secret)) => (Text::of(id), Some(Text::of(secret))),
        None => (Text::default(), None),
    };
    Ok(views::page(&KeysPage {
        chrome: Chrome::new("Keys", "keys", Some(user)),
        keys,
        created_secret,
        created_id,
        scopes: SCOPES.to_vec(),
        notice: notice(done),
    })?)
}

/// `GET /console/keys`.
pub(crate) async fn keys(
    State(state): State<ConsoleState>,
    user: User,
    Query(done): Query<Done>,
) -> Result<Response, PageError> {
    keys_page(&state, &user, None, &done).await
}

/// `POST /console/keys` (`name`, `environment`, `scope`…): creates a key and shows
/// its secret once, in this response only.
pub(crate) async fn create_key(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = checked_form(&user, &headers, &body)?;
    let scopes: Vec<&str> = f
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let req = json!({
        "name": field(&f, "name").trim(),
        "environment": env_of(Some(field(&f, "environment"))),
        "scopes": scopes,
    });
    let (_, created) = state
        .app
        .service()
        .create_key(&user.caller, input(req)?)
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let secret = created["secret"].as_str().unwrap_or_default().to_owned();
    keys_page(&state, &user, Some((id, secret)), &Done::default()).await
}

/// `POST /console/keys/{id}/revoke`.
pub(crate) async fn revoke_key(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    checked_form(&user, &headers, &body)?;
    state.app.service().revoke_key(&user.caller, id).await?;
    Ok(Redirect::to("/console/keys?done=revoked").into_response())
}

async fn ledger_page(
    state: &ConsoleState,
    user: &User,
    verified: Option<(bool, String)>,
) -> Result<Response, PageError> {
    let service = state.app.service();
    user.caller.require_view("admin")?;
    let (head, latest) = service.ledger_head(&user.caller)?;
    let checkpoints = service
        .recent_checkpoints(&user.caller, 20)?
        .into_iter()
        .map(|c| CheckpointView {
            size: c.checkpoint.size,
            root: c.checkpoint.root.to_hex(),
            time: Text::of(c.checkpoint.time().unwrap_or_default()),
        })
        .collect();
    let latest = latest
        .and_then(|c| c.to_text().ok())
        .unwrap_or_else(|| "none yet".to_owned());
    let (ok, result) = match verified {
        Some((ok, text)) => (Some(ok), Text::of(text)),
        None => (None, Text::default()),
    };
    Ok(views::page(&LedgerPage {
        chrome: Chrome::new("Ledger", "ledger", Some(user)),
        head,
        latest: Text::of(latest),
        checkpoints,
        verified: ok,
        result,
    })?)
}

/// `GET /console/ledger`.
pub(crate) async fn ledger(
    State(state): State<ConsoleState>,
    user: User,
) -> Result<Response, PageError> {
    ledger_page(&state, &user, None).await
}

/// `POST /console/ledger/verify`: verifies the tenant's whole ledger now (reads
/// only; a POST because it is expensive, so it carries the CSRF token).
pub(crate) async fn verify(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, PageError> {
    checked_form(&user, &headers, &body)?;
    let v = state.app.service_arc().verify_ledger(&user.caller).await?;
    let ok = v["ok"] == json!(true);
    let text = if ok {
        format!(
            "{} entries, {} checkpoints, root {}",
            v["entries"],
            v["checkpoints"],
            v["root"].as_str().unwrap_or_default()
        )
    } else {
        format!(
            "first bad entry at seq {}: {}",
            v["first_bad_seq"],
            v["problem"].as_str().unwrap_or_default()
        )
    };
    ledger_page(&state, &user, Some((ok, text))).await
}
