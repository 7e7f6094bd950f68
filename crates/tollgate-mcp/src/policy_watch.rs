//! Polls the active policy: when the version that decides the gateway's calls
//! changes, agents get `notifications/tools/list_changed`, and with
//! `hide_blocked_tools` the set of hidden tools is recomputed.
//!
//! Which tools are hidden, conservatively: only a tool named by a `block` rule whose
//! whole condition is `action.tool == "<upstream>.<tool>"` or
//! `action.tool in ["…", …]`. Such a rule matches every call of that tool whatever
//! its arguments and actor, and BLOCK is final (most restrictive wins), so the call
//! could never be allowed. Any other condition, however likely to block, leaves the
//! tool listed: a listed tool that is blocked still answers a clear `isError`, while
//! a hidden tool that would have been allowed is a silent loss.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;
use tollgate_core::policy::{Effect, PolicyFormat, parse_policy};

use crate::gate::Shared;

/// Runs forever (the task is aborted at shutdown).
pub async fn run(shared: Arc<Shared>) {
    let mut last: Option<String> = None;
    let mut warned = false;
    loop {
        match active(&shared).await {
            Ok((fingerprint, blocked)) => {
                warned = false;
                if last.as_deref() != Some(fingerprint.as_str()) {
                    if let Ok(mut b) = shared.blocked.write() {
                        *b = blocked;
                    }
                    if last.is_some() {
                        tracing::info!(policy = %fingerprint, "the active policy changed; tools/list_changed sent");
                        shared.tools_changed().await;
                    }
                    last = Some(fingerprint);
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "cannot read the active policy (tools/list_changed and hide_blocked_tools need a key with scope admin)");
                    warned = true;
                }
            }
        }
        tokio::time::sleep(shared.config.policy_poll).await;
    }
}

/// `(id@version, tools blocked outright)` of the policy the gateway's calls use.
async fn active(shared: &Shared) -> anyhow::Result<(String, BTreeSet<String>)> {
    let timeout = shared.config.tollgate_timeout;
    let (status, list) = shared
        .backend
        .json(Method::GET, "/v1/admin/policies", None, timeout)
        .await?;
    if status != StatusCode::OK {
        anyhow::bail!("GET /v1/admin/policies answered {status}");
    }
    let (id, pinned) = match &shared.config.policy {
        Some(p) => match p.split_once('@') {
            Some((id, v)) => (id.to_owned(), v.parse::<u64>().ok()),
            None => (p.clone(), None),
        },
        None => match list["default_policy"]["live"].as_str() {
            Some(id) => (id.to_owned(), None),
            None => return Ok(("none".into(), BTreeSet::new())),
        },
    };
    let version = pinned.or_else(|| {
        list["policies"]
            .as_array()?
            .iter()
            .find(|p| p["policy_id"] == Value::String(id.clone()))?["active"]["live"]
            .as_u64()
    });
    let Some(version) = version else {
        return Ok((format!("{id}@none"), BTreeSet::new()));
    };
    let fingerprint = format!("{id}@{version}");
    if !shared.config.hide_blocked_tools {
        return Ok((fingerprint, BTreeSet::new()));
    }
    let (status, v) = shared
        .backend
        .json(
            Method::GET,
            &format!("/v1/admin/policies/{id}/versions/{version}"),
            None,
            timeout,
        )
        .await?;
    if status != StatusCode::OK {
        // Built-in policies have no stored text: nothing is hidden.
        return Ok((fingerprint, BTreeSet::new()));
    }
    let text = v["text"].as_str().unwrap_or_default();
    Ok((fingerprint, blocked_outright(text)))
}

/// Tools a policy text blocks whatever the arguments (see the module docs).
pub fn blocked_outright(text: &str) -> BTreeSet<String> {
    let doc = [PolicyFormat::Json, PolicyFormat::Yaml, PolicyFormat::Toml]
        .into_iter()
        .find_map(|f| parse_policy(text, f).ok());
    let mut out = BTreeSet::new();
    for rule in doc.map(|d| d.rules).unwrap_or_default() {
        if rule.effect == Effect::Block {
            out.extend(tools_of(&rule.when));
        }
    }
    out
}

/// The tool names of a condition that is exactly `action.tool == "x"` or
/// `action.tool in ["x", "y"]`; nothing otherwise.
fn tools_of(when: &str) -> Vec<String> {
    let w = when.trim();
    let Some(rest) = w.strip_prefix("action.tool") else {
        return Vec::new();
    };
    let rest = rest.trim_start();
    if let Some(lit) = rest.strip_prefix("==") {
        return string_literal(lit.trim()).into_iter().collect();
    }
    if let Some(list) = rest.strip_prefix("in") {
        let list = list.trim();
        let Some(inner) = list.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in inner.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            match string_literal(item) {
                Some(s) => out.push(s),
                None => return Vec::new(),
            }
        }
        return out;
    }
    Vec::new()
}

/// `"abc"` or `'abc'` with no escapes or quotes inside.
fn string_literal(s: &str) -> Option<String> {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|s| s.strip_suffix(q))
            && !inner.contains(['"', '\'', '\\'])
        {
            return Some(inner.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unconditional_tool_blocks_are_hidden() {
        let text = r#"
id: t
default_effect: allow
rules:
  - name: a
    when: 'action.tool == "fs.move_file"'
    effect: block
    reason_code: NO_MOVES
  - name: b
    when: action.tool in ["git.git_reset", 'git.git_clean']
    effect: block
    reason_code: NO_RESET
  - name: c
    when: 'action.tool == "fs.write_file" && !action.arguments.path.startsWith("/w/")'
    effect: block
    reason_code: OUTSIDE
  - name: d
    when: 'action.tool == "git.git_commit"'
    effect: review
    reason_code: REVIEW
  - name: e
    when: 'action.tool == "x\"y"'
    effect: block
    reason_code: ODD
"#;
        let got = blocked_outright(text);
        let want: BTreeSet<String> = ["fs.move_file", "git.git_reset", "git.git_clean"]
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(got, want);
        assert!(blocked_outright("not a policy").is_empty());
    }
}
