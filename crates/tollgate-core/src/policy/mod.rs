//! Policy documents: parsing (YAML, TOML, JSON), validation with path-precise errors,
//! and compilation into an immutable [`CompiledPolicy`].

mod builtin;
pub(crate) mod compile;
mod document;
pub mod testing;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use builtin::{CSC_DEFAULT_ID, CSC_DEFAULT_TEXT, csc_default};
pub use compile::{AdaptiveSettings, CompiledPolicy, SignalRange};
pub use document::{
    AdaptiveDoc, BandDoc, DefaultEffect, Effect, OnError, PolicyDocument, ReviewDoc, RuleDoc,
    SignalDecl, SurvivalDoc, ThrottleDoc,
};

/// The text format of a policy document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PolicyFormat {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl PolicyFormat {
    /// The format named by a file extension (`yaml`, `yml`, `toml`, `json`).
    pub fn from_extension(ext: &str) -> Option<Self> {
        match ext.to_ascii_lowercase().as_str() {
            "yaml" | "yml" => Some(Self::Yaml),
            "toml" => Some(Self::Toml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// A best guess from the text: JSON if it starts with `{`, TOML if its first
    /// meaningful line is `key = value` or `[table]`, YAML otherwise.
    pub fn detect(text: &str) -> Self {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .unwrap_or("");
        if first.starts_with('{') {
            Self::Json
        } else if first.starts_with('[') || looks_like_toml_pair(first) {
            Self::Toml
        } else {
            Self::Yaml
        }
    }
}

fn looks_like_toml_pair(line: &str) -> bool {
    match line.split_once('=') {
        Some((key, _)) => {
            let key = key.trim();
            !key.is_empty()
                && !key.contains(':')
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'))
        }
        None => false,
    }
}

/// One problem in a policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyIssue {
    /// Where: `rules[2].when`, `throttle[0].refill_every`; empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A policy that cannot be used, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The problems, in document order.
    pub issues: Vec<PolicyIssue>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for issue in &self.issues {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl PolicyError {
    pub(crate) fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            issues: vec![PolicyIssue {
                path: path.into(),
                message: message.into(),
            }],
        }
    }
}

/// Parses a policy document, checking the schema (unknown fields, types) with the
/// path of the first problem.
pub fn parse_policy(text: &str, format: PolicyFormat) -> Result<PolicyDocument, PolicyError> {
    let value: serde_json::Value = match format {
        PolicyFormat::Json => serde_json::from_str(text)
            .map_err(|e| PolicyError::one("", format!("invalid JSON: {e}")))?,
        PolicyFormat::Yaml => serde_norway::from_str(text)
            .map_err(|e| PolicyError::one("", format!("invalid YAML: {e}")))?,
        PolicyFormat::Toml => toml::from_str(text)
            .map_err(|e| PolicyError::one("", format!("invalid TOML: {}", e.message())))?,
    };
    if !value.is_object() {
        return Err(PolicyError::one("", "a policy document must be a mapping"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        PolicyError::one(path, e.inner().to_string())
    })
}

/// Parses and compiles a policy text. The text's SHA-256 is recorded in the policy's
/// stamp; a document without `version` gets version 1.
pub fn compile_policy(text: &str, format: PolicyFormat) -> Result<CompiledPolicy, PolicyError> {
    let doc = parse_policy(text, format)?;
    CompiledPolicy::compile(doc, crate::digest::sha256_hex(text.as_bytes()))
}

/// Identifies one compiled policy version.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PolicyStamp {
    /// The policy id.
    pub id: Arc<str>,
    /// The immutable version number.
    pub version: u32,
    /// Hex SHA-256 of the policy text as published.
    pub text_sha256: Arc<str>,
}
