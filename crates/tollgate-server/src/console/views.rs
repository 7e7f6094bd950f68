//! The console's templates (`templates/console/*.html`, askama: checked at compile
//! time, HTML auto-escaped, no `|safe` anywhere) and the view models they render.
//! Agent-supplied strings are [`Text`] here and nowhere else.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::assets;
use super::session::User;
use super::text::Text;

/// Header, navigation and assets of every page.
#[derive(Clone, Debug)]
pub(crate) struct Chrome {
    pub(crate) title: String,
    pub(crate) page: &'static str,
    pub(crate) user: Option<UserView>,
    pub(crate) csrf: String,
    pub(crate) css: &'static str,
    pub(crate) htmx: &'static str,
    pub(crate) sse: &'static str,
    pub(crate) js: &'static str,
}

/// Who is signed in, and what their key may change.
#[derive(Clone, Debug)]
pub(crate) struct UserView {
    pub(crate) name: Text,
    pub(crate) key_id: String,
    pub(crate) tenant: Text,
    pub(crate) scopes: String,
    pub(crate) can_review: bool,
    pub(crate) can_admin: bool,
}

impl Chrome {
    pub(crate) fn new(title: impl Into<String>, page: &'static str, user: Option<&User>) -> Self {
        Chrome {
            title: title.into(),
            page,
            csrf: user.map(|u| u.csrf.clone()).unwrap_or_default(),
            user: user.map(|u| UserView {
                name: Text::of(u.caller.key.name.clone()),
                key_id: u.caller.key.id.clone(),
                tenant: Text::of(u.caller.tenant()),
                scopes: u.caller.key.scopes.join(", "),
                can_review: u.caller.can("review"),
                can_admin: u.caller.can("admin"),
            }),
            css: assets::url("console", "css"),
            htmx: assets::url("htmx", "js"),
            sse: assets::url("htmx-ext-sse", "js"),
            js: assets::url("console", "js"),
        }
    }

    /// `class="here"` on the navigation link of the current page.
    pub(crate) fn here(&self, page: &str) -> &'static str {
        if self.page == page { "here" } else { "" }
    }

    pub(crate) fn can_review(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.can_review)
    }

    pub(crate) fn can_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.can_admin)
    }
}

/// A rendered page (no-store comes from the console's header layer).
pub(crate) fn page(t: &impl Template) -> Result<Response, askama::Error> {
    Ok(Html(t.render()?).into_response())
}

/// A page with a status other than 200.
pub(crate) fn page_with(status: StatusCode, t: &impl Template) -> Result<Response, askama::Error> {
    Ok((status, Html(t.render()?)).into_response())
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub(crate) struct ErrorPage<'a> {
    pub(crate) chrome: Chrome,
    pub(crate) status: u16,
    pub(crate) message: &'a str,
}

/// The error page (plain text if even that cannot be rendered).
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let t = ErrorPage {
        chrome: Chrome::new(title, "error", None),
        status: status.as_u16(),
        message,
    };
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => {
            let mut r = (status, message.to_owned()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub(crate) struct LoginPage {
    pub(crate) chrome: Chrome,
    pub(crate) error: Option<&'static str>,
    pub(crate) signed_out: bool,
}

/// One bar segment of the overview chart (SVG user units).
#[derive(Clone, Debug)]
pub(crate) struct Bar {
    pub(crate) x: u32,
    pub(crate) y: u32,
    pub(crate) w: u32,
    pub(crate) h: u32,
    pub(crate) class: &'static str,
    pub(crate) title: String,
}

/// An axis label of the chart.
#[derive(Clone, Debug)]
pub(crate) struct Tick {
    pub(crate) x: u32,
    pub(crate) label: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
pub(crate) struct OverviewPage {
    pub(crate) chrome: Chrome,
    pub(crate) bars: Vec<Bar>,
    pub(crate) ticks: Vec<Tick>,
    pub(crate) peak: u64,
    pub(crate) total: u64,
    pub(crate) totals: Vec<(&'static str, &'static str, u64)>,
    pub(crate) open_reviews: usize,
    pub(crate) overrides: usize,
    pub(crate) head: u64,
    /// The chart covers only the newest entries of a busier hour.
    pub(crate) truncated: bool,
    pub(crate) checkpoint_size: Option<u64>,
    pub(crate) checkpoint_time: Text,
}

/// One decision as a row of the stream.
#[derive(Clone, Debug)]
pub(crate) struct RowView {
    pub(crate) seq: u64,
    pub(crate) time: String,
    pub(crate) id: Text,
    pub(crate) status: String,
    pub(crate) status_class: &'static str,
    pub(crate) gate: String,
    pub(crate) actor: Text,
    pub(crate) action_type: Text,
    pub(crate) mode: String,
    pub(crate) environment: String,
}

/// The CSS class of a status.
pub(crate) fn status_class(status: &str) -> &'static str {
    match status {
        "ALLOW" => "s-allow",
        "BLOCK" => "s-block",
        "ESCALATE" => "s-escalate",
        "REVIEW_REQUIRED" => "s-review",
        _ => "s-other",
    }
}

#[derive(Template)]
#[template(path = "console/row.html")]
pub(crate) struct RowFragment {
    pub(crate) row: RowView,
}

/// The stream's filter as the form shows it back (user input: shown as text).
#[derive(Clone, Debug, Default)]
pub(crate) struct FilterView {
    pub(crate) status: Text,
    pub(crate) gate: Text,
    pub(crate) actor: Text,
    pub(crate) action_type: Text,
    pub(crate) since: Text,
    pub(crate) until: Text,
    /// The filter as a query string (already percent-encoded), without `before`.
    pub(crate) query: String,
}

#[derive(Template)]
#[template(path = "console/decisions.html")]
pub(crate) struct DecisionsPage {
    pub(crate) chrome: Chrome,
    pub(crate) rows: Vec<RowView>,
    pub(crate) filter: FilterView,
    pub(crate) statuses: Vec<&'static str>,
    pub(crate) gates: Vec<&'static str>,
    pub(crate) older: Option<u64>,
    pub(crate) head: u64,
    pub(crate) scanned: u64,
    pub(crate) live: bool,
    pub(crate) stream_url: String,
}

/// One thing a gate read or compared: its kind and its fields.
#[derive(Clone, Debug)]
pub(crate) struct StepView {
    pub(crate) kind: Text,
    pub(crate) fields: Vec<(Text, Text)>,
}

/// One gate of the trace.
#[derive(Clone, Debug)]
pub(crate) struct GateView {
    pub(crate) gate: String,
    pub(crate) result: String,
    pub(crate) decisive: bool,
    pub(crate) steps: Vec<StepView>,
}

/// A candidate version's result.
#[derive(Clone, Debug)]
pub(crate) struct CandidateView {
    pub(crate) policy: Text,
    pub(crate) version: u64,
    pub(crate) changed: bool,
    pub(crate) active: Text,
    pub(crate) candidate: Text,
}

/// A vote on a review.
#[derive(Clone, Debug)]
pub(crate) struct VoteView {
    pub(crate) who: Text,
    pub(crate) at: Text,
    pub(crate) comment: Text,
}

/// A review, as the decision page and the queue show it.
#[derive(Clone, Debug)]
pub(crate) struct ReviewView {
    pub(crate) id: Text,
    pub(crate) status: Text,
    pub(crate) decision_id: Text,
    pub(crate) rule: Text,
    pub(crate) policy: Text,
    pub(crate) groups: Text,
    pub(crate) needed: u64,
    pub(crate) approvals: Vec<VoteView>,
    pub(crate) rejection: Option<VoteView>,
    pub(crate) created: Text,
    pub(crate) expires: Text,
    /// What was asked (from the decision): actor, action type, explanation.
    pub(crate) actor: Text,
    pub(crate) action_type: Text,
    pub(crate) why: Text,
    pub(crate) action: Text,
    pub(crate) pending: bool,
}

#[derive(Template)]
#[template(path = "console/decision.html")]
pub(crate) struct DecisionPage {
    pub(crate) chrome: Chrome,
    pub(crate) id: Text,
    pub(crate) seq: u64,
    pub(crate) time: Text,
    pub(crate) family: Text,
    pub(crate) status: String,
    pub(crate) status_class: &'static str,
    pub(crate) gate: String,
    pub(crate) mode: String,
    pub(crate) environment: Text,
    pub(crate) reason_codes: Vec<Text>,
    pub(crate) explanation: Text,
    pub(crate) actor: Text,
    pub(crate) action: Text,
    pub(crate) context: Text,
    pub(crate) signals: Vec<(Text, String)>,
    pub(crate) intent: Text,
    pub(crate) source: Text,
    pub(crate) gates: Vec<GateView>,
    pub(crate) policies: Vec<Text>,
    pub(crate) candidates: Vec<CandidateView>,
    pub(crate) reviews: Vec<ReviewView>,
    pub(crate) grant_id: Text,
    pub(crate) outcomes: Text,
    pub(crate) has_outcomes: bool,
    pub(crate) entry_hash: String,
    pub(crate) prev_hash: String,
    pub(crate) checkpoint: Text,
    pub(crate) proof: Vec<String>,
    pub(crate) proof_url: String,
    pub(crate) dossier_url: String,
}

#[derive(Template)]
#[template(path = "console/reviews.html")]
pub(crate) struct ReviewsPage {
    pub(crate) chrome: Chrome,
    pub(crate) pending: Vec<ReviewView>,
    pub(crate) resolved: Vec<ReviewView>,
    pub(crate) notice: Option<&'static str>,
}

/// A policy in the list.
#[derive(Clone, Debug)]
pub(crate) struct PolicyRow {
    pub(crate) id: Text,
    pub(crate) url_id: String,
    pub(crate) latest: String,
    pub(crate) versions: String,
    pub(crate) active_live: String,
    pub(crate) active_test: String,
    pub(crate) candidate: String,
}

#[derive(Template)]
#[template(path = "console/policies.html")]
pub(crate) struct PoliciesPage {
    pub(crate) chrome: Chrome,
    pub(crate) policies: Vec<PolicyRow>,
    pub(crate) default_live: Text,
    pub(crate) default_test: Text,
}

/// A version of a policy.
#[derive(Clone, Debug)]
pub(crate) struct VersionView {
    pub(crate) version: u64,
    pub(crate) sha: String,
    pub(crate) created: Text,
    pub(crate) active_in: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
pub(crate) struct PolicyPage {
    pub(crate) chrome: Chrome,
    pub(crate) id: Text,
    pub(crate) url_id: String,
    pub(crate) env: String,
    pub(crate) active: Option<u64>,
    pub(crate) versions: Vec<VersionView>,
    pub(crate) shown: u64,
    pub(crate) text: Text,
    pub(crate) diff_from: u64,
    pub(crate) diff_to: u64,
    pub(crate) diff: Text,
    pub(crate) rules_added: Text,
    pub(crate) rules_removed: Text,
    pub(crate) rules_changed: Text,
    pub(crate) report: Text,
    pub(crate) notice: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
pub(crate) struct ConfirmPage {
    pub(crate) chrome: Chrome,
    pub(crate) id: Text,
    pub(crate) url_id: String,
    pub(crate) version: u64,
    pub(crate) env: String,
    pub(crate) active: Option<u64>,
    pub(crate) rollback: bool,
}

/// A kill switch.
#[derive(Clone, Debug)]
pub(crate) struct OverrideView {
    pub(crate) id: Text,
    pub(crate) url_id: String,
    pub(crate) scope: Text,
    pub(crate) reason: Text,
}

#[derive(Template)]
#[template(path = "console/overrides.html")]
pub(crate) struct OverridesPage {
    pub(crate) chrome: Chrome,
    pub(crate) overrides: Vec<OverrideView>,
    pub(crate) notice: Option<&'static str>,
}

/// A key of the tenant.
#[derive(Clone, Debug)]
pub(crate) struct KeyView {
    pub(crate) id: Text,
    pub(crate) url_id: String,
    pub(crate) name: Text,
    pub(crate) environment: Text,
    pub(crate) scopes: Text,
    pub(crate) created: Text,
    pub(crate) revoked: Text,
    pub(crate) is_revoked: bool,
    pub(crate) is_self: bool,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
pub(crate) struct KeysPage {
    pub(crate) chrome: Chrome,
    pub(crate) keys: Vec<KeyView>,
    pub(crate) created_secret: Option<Text>,
    pub(crate) created_id: Text,
    pub(crate) scopes: Vec<&'static str>,
    pub(crate) notice: Option<&'static str>,
}

/// A checkpoint in the list.
#[derive(Clone, Debug)]
pub(crate) struct CheckpointView {
    pub(crate) size: u64,
    pub(crate) root: String,
    pub(crate) time: Text,
}

#[derive(Template)]
#[template(path = "console/ledger.html")]
pub(crate) struct LedgerPage {
    pub(crate) chrome: Chrome,
    pub(crate) head: u64,
    pub(crate) latest: Text,
    pub(crate) checkpoints: Vec<CheckpointView>,
    pub(crate) verified: Option<bool>,
    pub(crate) result: Text,
}

impl FilterView {
    pub(crate) fn status_is(&self, s: &str) -> bool {
        self.status.0 == s
    }

    pub(crate) fn gate_is(&self, g: &str) -> bool {
        self.gate.0 == g
    }
}

impl PolicyPage {
    /// Whether `version` is the active one in the page's environment.
    pub(crate) fn is_active(&self, version: &u64) -> bool {
        self.active == Some(*version)
    }

    /// Whether activating `version` would be a roll back.
    pub(crate) fn is_older(&self, version: &u64) -> bool {
        self.active.is_some_and(|a| *version < a)
    }
}

impl RowView {
    /// `MM-DD HH:MM:SS` of the row's time (the full time is the cell's title).
    pub(crate) fn short_time(&self) -> String {
        let t = self.time.get(5..19).unwrap_or(&self.time);
        t.replacen('T', " ", 1)
    }
}
