//! Velocity conditions: `history.count(scope, window)` and
//! `history.sum(scope, "field", window)` over the same actor's, source's or tenant's
//! recent permitted actions, the way cumulative limits work in payments.
//!
//! The history is engine state like the buckets: the caller passes the events, the
//! engine reads them, and a permitted enforce-mode decision returns the event to add.
//! Arguments are literals (`"actor"`, `"action.amount"`, `duration("24h")`), so every
//! aggregate a policy reads is known when it compiles and computed once per decision.

use std::collections::BTreeMap;

use cel::IdedExpr;
use cel::common::ast::{Expr, LiteralValue};
use serde::{Deserialize, Serialize};

use crate::request::DecisionRequest;
use crate::time::UnixMillis;

/// A permitted enforce-mode action, as the history remembers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When it was permitted.
    pub at: UnixMillis,
    /// Its `actor.id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Its `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The numeric fields that `history.sum` calls read (`action.amount`).
    #[serde(default)]
    pub values: BTreeMap<String, f64>,
}

/// Whose history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The request's actor.
    Actor,
    /// The request's source.
    Source,
    /// The whole tenant.
    Tenant,
}

/// One aggregate a policy reads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct HistoryCall {
    pub(crate) scope: Scope,
    /// `None` for `count`, the summed field for `sum`.
    pub(crate) field: Option<String>,
    pub(crate) window_ms: i64,
}

impl HistoryCall {
    /// How the trace names it: `sum(actor, action.amount, 86400000ms)`.
    pub(crate) fn describe(&self) -> String {
        let scope = match self.scope {
            Scope::Actor => "actor",
            Scope::Source => "source",
            Scope::Tenant => "tenant",
        };
        match &self.field {
            Some(f) => format!("sum({scope}, {f}, {}ms)", self.window_ms),
            None => format!("count({scope}, {}ms)", self.window_ms),
        }
    }

    /// The aggregate over `events` for `request` at `now`: events in
    /// `(now - window, now]` of the same actor / source / tenant.
    pub(crate) fn compute(
        &self,
        request: &DecisionRequest,
        events: &[HistoryEvent],
        now: UnixMillis,
    ) -> f64 {
        let from = now.as_millis().saturating_sub(self.window_ms);
        let mut total = 0.0;
        for e in events {
            let at = e.at.as_millis();
            if at <= from || at > now.as_millis() {
                continue;
            }
            let same = match self.scope {
                Scope::Actor => {
                    request.actor_id().is_some() && e.actor.as_deref() == request.actor_id()
                }
                Scope::Source => request.source.is_some() && e.source == request.source,
                Scope::Tenant => true,
            };
            if !same {
                continue;
            }
            total += match &self.field {
                None => 1.0,
                Some(f) => e.values.get(f).copied().unwrap_or(0.0),
            };
        }
        total
    }
}

/// Parses `duration("24h")` (or an int literal of milliseconds) into milliseconds.
pub(crate) fn duration_ms(e: &IdedExpr) -> Result<i64, String> {
    match &e.expr {
        Expr::Literal(LiteralValue::Int(i)) if *i.inner() > 0 => Ok(*i.inner()),
        Expr::Call(call)
            if call.func_name == "duration" && call.target.is_none() && call.args.len() == 1 =>
        {
            match call.args.first().map(|a| &a.expr) {
                Some(Expr::Literal(LiteralValue::String(s))) => parse_duration(s.inner()),
                _ => Err("duration() takes a string literal such as \"24h\"".to_owned()),
            }
        }
        _ => Err(
            "the window must be duration(\"…\") or a positive number of milliseconds".to_owned(),
        ),
    }
}

/// `"24h"` → 86 400 000.
pub(crate) fn parse_duration(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("bad duration '{text}': {e}"))?;
    let ms =
        i64::try_from(d.as_millis()).map_err(|_| format!("bad duration '{text}': too long"))?;
    if ms < 1 {
        return Err(format!("bad duration '{text}': must be at least 1ms"));
    }
    Ok(ms)
}

/// Recognises `history.count(...)` / `history.sum(...)`; `None` if `e` is not one,
/// `Some(Err)` if it is one with bad arguments.
pub(crate) fn parse_call(e: &IdedExpr) -> Option<Result<HistoryCall, String>> {
    let Expr::Call(call) = &e.expr else {
        return None;
    };
    let target = call.target.as_ref()?;
    if !matches!(&target.expr, Expr::Ident(n) if n == "history") {
        return None;
    }
    let string = |i: usize| match call.args.get(i).map(|a| &a.expr) {
        Some(Expr::Literal(LiteralValue::String(s))) => Some(s.inner().to_owned()),
        _ => None,
    };
    let scope = |s: Option<String>| match s.as_deref() {
        Some("actor") => Ok(Scope::Actor),
        Some("source") => Ok(Scope::Source),
        Some("tenant") => Ok(Scope::Tenant),
        _ => Err("the scope must be the literal \"actor\", \"source\" or \"tenant\"".to_owned()),
    };
    Some(match (call.func_name.as_str(), call.args.len()) {
        ("count", 2) => (|| {
            Ok(HistoryCall {
                scope: scope(string(0))?,
                field: None,
                window_ms: duration_ms(
                    call.args
                        .get(1)
                        .ok_or_else(|| "missing window".to_owned())?,
                )?,
            })
        })(),
        ("sum", 3) => (|| {
            let field = string(1).ok_or_else(|| {
                "the field must be a string literal such as \"action.amount\"".to_owned()
            })?;
            let ok = field.split('.').count() >= 2
                && matches!(
                    field.split('.').next(),
                    Some("action" | "context" | "actor")
                )
                && field.split('.').all(|p| !p.is_empty());
            if !ok {
                return Err(format!(
                    "cannot sum '{field}': name a field under action, context or actor"
                ));
            }
            Ok(HistoryCall {
                scope: scope(string(0))?,
                field: Some(field),
                window_ms: duration_ms(
                    call.args
                        .get(2)
                        .ok_or_else(|| "missing window".to_owned())?,
                )?,
            })
        })(),
        ("count", _) => Err("history.count takes (scope, window)".to_owned()),
        ("sum", _) => Err("history.sum takes (scope, \"field\", window)".to_owned()),
        (other, _) => Err(format!(
            "unknown history function '{other}' (known: count, sum)"
        )),
    })
}

/// The value of `field` (a dotted request path) when it is a number.
pub(crate) fn number_at(request: &DecisionRequest, field: &str) -> Option<f64> {
    let mut parts = field.split('.');
    let root = match parts.next()? {
        "action" => &request.action,
        "context" => &request.context,
        "actor" => &request.actor,
        _ => return None,
    };
    let mut cur = root.get(parts.next()?)?;
    for p in parts {
        cur = cur.get(p)?;
    }
    cur.as_f64()
}
