//! Sign-in and sign-out, the overview, the decision stream (with its SSE feed), the
//! decision page and its proof material.

use std::convert::Infallible;
use std::time::Duration;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::stream::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_api::{Gate, Status};

use super::session::{COOKIE, User, csrf_ok};
use super::text::Text;
use super::views::{
    self, Bar, CandidateView, Chrome, DecisionPage, DecisionsPage, FilterView, GateView, LoginPage,
    OverviewPage, RowFragment, RowView, StepView, Tick, status_class,
};
use super::{ConsoleState, PageError};
use crate::service::console::{DecisionFilter, DecisionRow};
use crate::service::{Caller, Error, auth};

/// Rows per page of the stream.
pub(crate) const PAGE_SIZE: usize = 50;

/// Refuses a POST that a browser says came from another site (defence in depth beside
/// the CSRF token and `SameSite=Strict`): `Sec-Fetch-Site` other than `same-origin`,
/// or an `Origin` naming another host. (With `Referrer-Policy: no-referrer` a
/// browser sends `Origin: null` for the console's own forms; `Sec-Fetch-Site` still
/// tells.)
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && site != "same-origin"
    {
        return Err(PageError::Csrf);
    }
    if let Some(origin) = get("origin")
        && origin != "null"
    {
        let host = get("host").unwrap_or_default();
        let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
        if origin_host.is_empty() || origin_host != host {
            return Err(PageError::Csrf);
        }
    }
    Ok(())
}

/// Checks a POST's origin and CSRF token.
pub(crate) fn check_post(user: &User, headers: &HeaderMap, csrf: &str) -> Result<(), PageError> {
    same_origin(headers)?;
    if !csrf_ok(user, csrf) {
        return Err(PageError::Csrf);
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    bye: Option<String>,
}

/// `GET /console/login`.
pub(crate) async fn login_form(Query(q): Query<LoginQuery>) -> Result<Response, PageError> {
    Ok(views::page(&LoginPage {
        chrome: Chrome::new("Sign in", "login", None),
        error: None,
        signed_out: q.bye.is_some(),
    })?)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    key: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm { key: <redacted> }")
    }
}

/// `POST /console/login`: an API key (admin, review or read) opens a session.
pub(crate) async fn login(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    same_origin(&headers)?;
    let service = state.app.service();
    let refuse = |why: &'static str| -> Result<Response, PageError> {
        Ok(views::page_with(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                chrome: Chrome::new("Sign in", "login", None),
                error: Some(why),
                signed_out: false,
            },
        )?)
    };
    let caller = match service.authenticate(form.key.trim()) {
        Ok(c) => c,
        Err(Error::Internal(e)) => return Err(PageError::Service(Error::Internal(e))),
        Err(_) => return refuse("That key is not valid (unknown, revoked or expired)."),
    };
    if !caller
        .key
        .scopes
        .iter()
        .any(|s| matches!(s.as_str(), "admin" | "review" | "read"))
    {
        return refuse("The console needs a key with the admin, review or read scope.");
    }
    service.check_key_rate(&caller.key.id).await?;
    let id = state
        .sessions
        .open(&auth::hash_secret(form.key.trim()), service.now_ms())?;
    let mut cookie = format!(
        "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}",
        state.sessions.max_age_s()
    );
    if state.secure {
        cookie.push_str("; Secure");
    }
    let mut response = Redirect::to("/console").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(PageError::internal)?,
    );
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /console/logout`: ends the session and clears the cookie.
pub(crate) async fn logout(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    check_post(&user, &headers, &form.csrf)?;
    state.sessions.close(&user.session);
    let mut response = Redirect::to("/console/login?bye=1").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "tg_session=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(response)
}

/// Chart geometry: 60 slots of 10 units from x = 30, 170 units of height above y = 190.
const CHART_X0: u32 = 30;
const CHART_SLOT: u32 = 10;
const CHART_BASE: u32 = 190;
const CHART_HEIGHT: u64 = 170;

/// The most ledger entries the chart reads back (a busier hour is shown in part).
const CHART_MAX_ENTRIES: u64 = 10_000;

/// Statuses in the chart, bottom to top, with their CSS class.
const CHART_STATUSES: [(&str, &str); 4] = [
    ("ALLOW", "s-allow"),
    ("REVIEW_REQUIRED", "s-review"),
    ("ESCALATE", "s-escalate"),
    ("BLOCK", "s-block"),
];

/// `GET /console`: the overview.
pub(crate) async fn overview(
    State(state): State<ConsoleState>,
    user: User,
) -> Result<Response, PageError> {
    let service = state.app.service();
    let caller = &user.caller;
    let (minutes, truncated) = service.decisions_per_minute(caller, 60, CHART_MAX_ENTRIES)?;
    let peak = minutes
        .iter()
        .map(|m| m.by_status.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut bars = Vec::new();
    let mut ticks = Vec::new();
    let mut totals: Vec<(&'static str, &'static str, u64)> =
        CHART_STATUSES.iter().map(|(s, c)| (*s, *c, 0)).collect();
    for (i, m) in (0u32..).zip(minutes.iter()) {
        let x = CHART_X0 + i * CHART_SLOT;
        let mut y = CHART_BASE;
        for (j, (status, class)) in CHART_STATUSES.iter().enumerate() {
            let n = m.by_status.get(*status).copied().unwrap_or(0);
            if let Some(t) = totals.get_mut(j) {
                t.2 += n;
            }
            if n == 0 {
                continue;
            }
            let h = u32::try_from((n * CHART_HEIGHT).div_ceil(peak)).unwrap_or(0);
            y = y.saturating_sub(h);
            bars.push(Bar {
                x,
                y,
                w: CHART_SLOT - 2,
                h,
                class,
                title: format!("{} UTC: {n} {status}", m.minute.get(11..).unwrap_or("")),
            });
        }
        if i % 10 == 0 {
            ticks.push(Tick {
                x,
                label: m.minute.get(11..).unwrap_or("").to_owned(),
            });
        }
    }
    let total = totals.iter().map(|t| t.2).sum();
    let open_reviews = service
        .list_reviews(caller, Some("pending"))
        .await
        .map_or(0, |v| v.len());
    let overrides = service
        .list_overrides(caller)
        .await
        .ok()
        .and_then(|v| v["overrides"].as_array().map(Vec::len))
        .unwrap_or(0);
    let (head, checkpoint) = service.ledger_head(caller)?;
    Ok(views::page(&OverviewPage {
        chrome: Chrome::new("Overview", "overview", Some(&user)),
        bars,
        ticks,
        peak,
        total,
        totals,
        open_reviews,
        overrides,
        head,
        truncated,
        checkpoint_size: checkpoint.as_ref().map(|c| c.checkpoint.size),
        checkpoint_time: Text::of(
            checkpoint
                .as_ref()
                .and_then(|c| c.checkpoint.time())
                .unwrap_or(""),
        ),
    })?)
}

/// The stream's query: the filter and where the page starts.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    gate: Option<String>,
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    action_type: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// Older page: entries before this ledger position.
    #[serde(default)]
    before: Option<u64>,
    /// Live feed: entries from this ledger position on.
    #[serde(default)]
    after: Option<u64>,
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl StreamQuery {
    fn filter(&self) -> DecisionFilter {
        DecisionFilter {
            status: nonempty(&self.status),
            gate: nonempty(&self.gate),
            actor: nonempty(&self.actor),
            action_type: nonempty(&self.action_type),
            since: nonempty(&self.since),
            until: nonempty(&self.until),
        }
    }

    /// The filter as a query string (percent-encoded).
    fn query(&self) -> String {
        let f = self.filter();
        let pairs: Vec<(&str, String)> = [
            ("status", f.status),
            ("gate", f.gate),
            ("actor", f.actor),
            ("action_type", f.action_type),
            ("since", f.since),
            ("until", f.until),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

fn row_view(r: DecisionRow) -> RowView {
    RowView {
        seq: r.seq,
        status_class: status_class(&r.status),
        time: r.time,
        id: Text::of(r.decision_id),
        status: r.status,
        gate: r.gate,
        actor: Text::of(r.actor),
        action_type: Text::of(r.action_type),
        mode: r.mode,
        environment: r.environment,
    }
}

/// `GET /console/decisions`: the stream, newest first, 50 a page, live at the top.
pub(crate) async fn decisions(
    State(state): State<ConsoleState>,
    user: User,
    Query(q): Query<StreamQuery>,
) -> Result<Response, PageError> {
    let service = state.app.service();
    let filter = q.filter();
    let page = service.decision_page(&user.caller, &filter, q.before, PAGE_SIZE)?;
    let query = q.query();
    // Only the newest page is live: an older page stays as it is.
    let live = q.before.is_none();
    let stream_url = if query.is_empty() {
        format!("/console/decisions/stream?after={}", page.head)
    } else {
        format!("/console/decisions/stream?{query}&after={}", page.head)
    };
    let text = |v: &Option<String>| Text::of(v.clone().unwrap_or_default());
    Ok(views::page(&DecisionsPage {
        chrome: Chrome::new("Decisions", "decisions", Some(&user)),
        rows: page.rows.into_iter().map(row_view).collect(),
        filter: FilterView {
            status: text(&filter.status),
            gate: text(&filter.gate),
            actor: text(&filter.actor),
            action_type: text(&filter.action_type),
            since: text(&filter.since),
            until: text(&filter.until),
            query,
        },
        statuses: Status::SERVED.iter().map(|s| s.as_str()).collect(),
        gates: Gate::SERVED.iter().map(|g| g.as_str()).collect(),
        older: page.older,
        head: page.head,
        scanned: page.scanned,
        live,
        stream_url,
    })?)
}

/// How often the live feed looks for new entries.
const STREAM_POLL: Duration = Duration::from_millis(500);
/// How long one feed connection lasts; the browser reconnects (with `Last-Event-ID`),
/// and a server shutting down never waits longer than this for an open console.
const STREAM_LIFETIME: Duration = Duration::from_secs(30);

/// `GET /console/decisions/stream?after=N&…filter`: server-sent events, one `row`
/// event (a rendered `<tr>`) per new decision matching the filter; the event id is
/// the ledger position to resume after.
pub(crate) async fn stream(
    State(state): State<ConsoleState>,
    user: User,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let start = resume.or(q.after).unwrap_or(0);
    let filter = q.filter();
    let feed = futures_util::stream::unfold(
        (
            state,
            user,
            filter,
            start,
            tokio::time::Instant::now(),
            Vec::<Event>::new(),
        ),
        |(state, user, filter, mut next, started, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop() {
                    return Some((Ok(e), (state, user, filter, next, started, queue)));
                }
                if started.elapsed() >= STREAM_LIFETIME {
                    return None;
                }
                tokio::time::sleep(STREAM_POLL).await;
                // The session must still be alive and its key valid.
                let service = state.app.service();
                if service.authenticate_hash(&user.caller.key.hash).is_err() {
                    return None;
                }
                let Ok((rows, to)) = service.decisions_after(&user.caller, &filter, next, 200)
                else {
                    return None;
                };
                next = to;
                // Oldest first on the wire (each goes on top): the queue pops from its end.
                for r in rows.into_iter().rev() {
                    let html = RowFragment { row: row_view(r) }
                        .to_string_lossy()
                        .replace('\n', "");
                    queue.push(
                        Event::default()
                            .event("row")
                            .id(next.to_string())
                            .data(html),
                    );
                }
            }
        },
    );
    Ok(Sse::new(feed).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

trait RenderLossy {
    fn to_string_lossy(&self) -> String;
}

impl<T: askama::Template> RenderLossy for T {
    fn to_string_lossy(&self) -> String {
        self.render().unwrap_or_default()
    }
}

/// The fields of a trace step (everything but its `kind`), as text.
fn step_view(step: &Value) -> StepView {
    let kind = step["kind"].as_str().unwrap_or("step").replace('_', " ");
    let fields = step
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| k.as_str() != "kind")
                .map(|(k, v)| {
                    let shown = match v {
                        Value::String(s) => s.clone(),
                        other => serde_json::to_string(other).unwrap_or_default(),
                    };
                    (Text::of(k.replace('_', " ")), Text::of(shown))
                })
                .collect()
        })
        .unwrap_or_default();
    StepView {
        kind: Text::of(kind),
        fields,
    }
}

/// Reviews of a decision, as the decision page and the queue show them.
pub(crate) fn review_view(r: &Value, asked: Option<&DecisionAsked>) -> views::ReviewView {
    let s = |v: &Value| Text::of(v.as_str().unwrap_or_default());
    let vote = |v: &Value| views::VoteView {
        who: Text::of(
            v["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or_else(|| v["key_id"].as_str())
                .unwrap_or_default(),
        ),
        at: s(&v["at"]),
        comment: s(&v["comment"]),
    };
    let groups: Vec<String> = r["approver_groups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    views::ReviewView {
        id: s(&r["review_id"]),
        status: s(&r["status"]),
        decision_id: s(&r["decision_id"]),
        rule: s(&r["rule"]),
        policy: s(&r["policy_id"]),
        groups: Text::of(groups.join(", ")),
        needed: r["min_approvals"].as_u64().unwrap_or(1),
        approvals: r["approvals"]
            .as_array()
            .map(|a| a.iter().map(vote).collect())
            .unwrap_or_default(),
        rejection: r.get("rejection").filter(|v| v.is_object()).map(vote),
        created: s(&r["created_at"]),
        expires: s(&r["expires_at"]),
        actor: Text::of(asked.map(|a| a.actor.clone()).unwrap_or_default()),
        action_type: Text::of(asked.map(|a| a.action_type.clone()).unwrap_or_default()),
        why: Text::of(asked.map(|a| a.why.clone()).unwrap_or_default()),
        action: Text::of(asked.map(|a| a.action.clone()).unwrap_or_default()),
        pending: r["status"] == json!("pending"),
    }
}

/// What a reviewed decision asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct DecisionAsked {
    pub(crate) actor: String,
    pub(crate) action_type: String,
    pub(crate) why: String,
    pub(crate) action: String,
}

/// What decision `id` asked for (empty when it cannot be read).
pub(crate) fn asked(state: &ConsoleState, caller: &Caller, id: &str) -> DecisionAsked {
    match state.app.service().decision(caller.tenant(), id) {
        Ok((_, body)) => DecisionAsked {
            actor: body.request.actor_id().unwrap_or_default().to_owned(),
            action_type: body.request.action_type().unwrap_or_default().to_owned(),
            why: body.verdict.explanation.clone(),
            action: serde_json::to_string_pretty(&body.request.action).unwrap_or_default(),
        },
        Err(_) => DecisionAsked::default(),
    }
}

/// `GET /console/decisions/{id}`: one decision, every gate, and its proof.
pub(crate) async fn decision(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let service = state.app.service();
    let tenant = user.caller.tenant().to_owned();
    let (dossier, body) = service.decision_dossier(&user.caller, &id).await?;
    let entry = &dossier.entry;
    let v = &body.verdict;
    let decisive_gate = v.gate;
    let gates = v
        .trace
        .gates()
        .iter()
        .map(|g| {
            let steps = serde_json::to_value(&g.steps)
                .ok()
                .and_then(|s| s.as_array().cloned())
                .unwrap_or_default();
            GateView {
                gate: g.gate.as_str().to_owned(),
                result: serde_json::to_value(g.result)
                    .ok()
                    .and_then(|r| r.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                decisive: g.gate == decisive_gate,
                steps: steps.iter().map(step_view).collect(),
            }
        })
        .collect();
    let reviews: Vec<_> = service
        .reviews_of(&tenant, &id)?
        .as_array()
        .map(|a| a.iter().map(|r| review_view(r, None)).collect())
        .unwrap_or_default();
    let outcomes = service.outcomes_of(&tenant, &id)?;
    let has_outcomes = outcomes.as_array().is_some_and(|a| !a.is_empty());
    let status = v.status.as_str().to_owned();
    let page = DecisionPage {
        chrome: Chrome::new(format!("Decision {id}"), "decisions", Some(&user)),
        id: Text::of(id.clone()),
        seq: entry.seq,
        time: Text::of(entry.time.clone()),
        family: Text::of(body.family.clone()),
        status_class: status_class(&status),
        status,
        gate: v.gate.as_str().to_owned(),
        mode: serde_json::to_value(v.mode)
            .ok()
            .and_then(|m| m.as_str().map(str::to_owned))
            .unwrap_or_default(),
        environment: Text::of(body.environment.clone()),
        reason_codes: v.reason_codes.iter().map(|r| Text::of(r.clone())).collect(),
        explanation: Text::of(v.explanation.clone()),
        actor: Text::json(&body.request.actor),
        action: Text::json(&body.request.action),
        context: Text::json(&body.request.context),
        signals: body
            .request
            .signals
            .iter()
            .map(|(k, x)| (Text::of(k.clone()), x.to_string()))
            .collect(),
        intent: Text::of(body.request.intent.clone().unwrap_or_default()),
        source: Text::of(body.request.source.clone().unwrap_or_default()),
        gates,
        policies: v
            .policies
            .iter()
            .map(|p| {
                Text::of(format!(
                    "{}@{} (sha-256 {})",
                    p.id, p.version, p.text_sha256
                ))
            })
            .collect(),
        candidates: body
            .candidates
            .iter()
            .map(|c| CandidateView {
                policy: Text::of(c.policy_id.clone()),
                version: c.version,
                changed: c.changed,
                active: Text::json(&c.active),
                candidate: Text::json(&c.candidate),
            })
            .collect(),
        reviews,
        grant_id: Text::of(body.grant_id.clone().unwrap_or_default()),
        outcomes: Text::json(&outcomes),
        has_outcomes,
        entry_hash: entry.entry_hash.to_hex(),
        prev_hash: entry.prev_hash.to_hex(),
        checkpoint: Text::of(dossier.checkpoint.clone()),
        proof: dossier.inclusion_proof.iter().map(|h| h.to_hex()).collect(),
        proof_url: format!("/console/decisions/{}/proof.json", encode_path(&id)),
        dossier_url: format!("/console/decisions/{}/dossier.json", encode_path(&id)),
    };
    Ok(views::page(&page)?)
}

/// A path segment, percent-encoded.
pub(crate) fn encode_path(s: &str) -> String {
    // `application/x-www-form-urlencoded` writes a space as `+`; in a path that would
    // be a plus sign, so spaces are written `%20`.
    serde_urlencoded::to_string([("", s)])
        .unwrap_or_default()
        .trim_start_matches('=')
        .replace('+', "%20")
}

/// `GET /console/decisions/{id}/proof.json`: what `console.js` checks — the entry's
/// canonical bytes (base64), its hash and seq, the inclusion proof and the checkpoint
/// text. The key it checks the checkpoint against comes from `/v1/signing-keys`.
pub(crate) async fn proof(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let p = state
        .app
        .service()
        .decision_proof(&user.caller, &id)
        .await?;
    let body = json!({
        "decision_id": id,
        "seq": p.dossier.entry.seq,
        "entry_hash": p.dossier.entry.entry_hash.to_hex(),
        "canonical": B64.encode(&p.canonical),
        "inclusion_proof": p.dossier.inclusion_proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "checkpoint": p.dossier.checkpoint,
    });
    Ok(axum::Json(body).into_response())
}

/// `GET /console/decisions/{id}/dossier.json`: the dossier, as a download.
pub(crate) async fn dossier(
    State(state): State<ConsoleState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let d = state.app.service().dossier(&user.caller, &id).await?;
    let name = format!(
        "attachment; filename=\"dossier-{}.json\"",
        id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<String>()
    );
    let mut r = axum::Json(d).into_response();
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&name).map_err(PageError::internal)?,
    );
    Ok(r)
}
