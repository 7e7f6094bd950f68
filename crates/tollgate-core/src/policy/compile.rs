//! Compilation: a validated document turned into the immutable form the engine runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::document::{
    AdaptiveDoc, BandDoc, DefaultEffect, Effect, OnError, PolicyDocument, RuleDoc, ThrottleDoc,
};
use super::{PolicyError, PolicyIssue, PolicyStamp};
use crate::expr::{self, CompiledExpr};
use crate::throttle::Gcra;
use crate::vars::{VARIABLES, VarSet};

/// Largest bucket capacity accepted.
pub(crate) const MAX_CAPACITY: u32 = 1_000_000;
/// Longest duration accepted anywhere in a policy (366 days).
const MAX_DURATION_MS: i64 = 366 * 24 * 3600 * 1000;

/// A compiled, immutable policy version. Cheap to share: hold it in an `Arc`.
///
/// INVARIANT: every expression in it compiled and references only known variables;
/// every threshold and duration is in range.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub(crate) stamp: PolicyStamp,
    pub(crate) document: PolicyDocument,
    pub(crate) default_effect: DefaultEffect,
    pub(crate) signals: Vec<(String, SignalRange)>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) survival: Option<Survival>,
    pub(crate) bands: Vec<Band>,
    pub(crate) throttles: Vec<Throttle>,
    pub(crate) adaptive: Option<AdaptiveSettings>,
    /// Variables any expression of this policy reads.
    pub(crate) needed: VarSet,
    /// Request paths the rules read (and their dotted names), reported in the trace.
    pub(crate) rule_paths: Vec<(Vec<String>, Arc<str>)>,
    /// Narrows the rules to evaluate by one request field, when rules test it.
    pub(crate) index: Option<RuleIndex>,
    /// The history aggregates the policy's expressions read.
    pub(crate) history_calls: Vec<crate::history::HistoryCall>,
}

/// Rules indexed by a guard on one request path: a top-level conjunct
/// `PATH == "lit"`, `PATH.startsWith("lit")` or `PATH in ["a", "b"]`. A rule whose
/// guard is false cannot match, whatever else its condition says.
///
/// Lookup allocates nothing and does not depend on the number of rules:
///
/// - exact literals are sorted, and a value finds its rules by binary search;
/// - prefix literals are a byte trie. The value walks down from the root one byte at
///   a time until no child matches; the last node on the way that ends a prefix is
///   the longest prefix of the value in the set. Each such node holds the rules of
///   its own prefix merged with those of every shorter prefix of it, so that one node
///   gives every prefix rule that can match.
///
/// The rules to evaluate are then the merge, in rule order and without repeats, of
/// three sorted lists: the rules without a guard on the path, the exact hit and the
/// prefix hit ([`Candidates`]).
#[derive(Debug)]
pub(crate) struct RuleIndex {
    pub(crate) path: Vec<String>,
    pub(crate) dotted: Arc<str>,
    /// Exact guards, sorted by literal; each with its rules in rule order.
    exact: Vec<(Box<str>, Box<[usize]>)>,
    /// The prefix trie; node 0 is the root (the empty prefix).
    trie: Vec<TrieNode>,
    /// Rules without a guard on this path: always evaluated.
    always: Box<[usize]>,
}

/// A node of the prefix trie of a [`RuleIndex`].
#[derive(Debug, Default)]
struct TrieNode {
    /// Children by their byte, sorted by byte.
    children: Box<[(u8, u32)]>,
    /// When a prefix literal ends here: its rules and those of every shorter prefix
    /// literal of it, in rule order.
    rules: Option<Box<[usize]>>,
}

impl RuleIndex {
    /// Rule indexes to evaluate for `value`, in rule order, without repeats.
    pub(crate) fn candidates(&self, value: &str) -> Candidates<'_> {
        let exact = self
            .exact
            .binary_search_by(|(k, _)| (**k).cmp(value))
            .ok()
            .and_then(|i| self.exact.get(i))
            .map_or(&[][..], |(_, rules)| &rules[..]);
        Candidates {
            lists: [&self.always, exact, self.longest_prefix(value)],
        }
    }

    /// The rules of the longest prefix literal of `value` (and of its prefixes).
    fn longest_prefix(&self, value: &str) -> &[usize] {
        let Some(mut node) = self.trie.first() else {
            return &[];
        };
        let mut hit = node.rules.as_deref();
        for byte in value.bytes() {
            let next = node
                .children
                .binary_search_by_key(&byte, |(b, _)| *b)
                .ok()
                .and_then(|i| node.children.get(i))
                .and_then(|(_, child)| self.trie.get(usize::try_from(*child).ok()?));
            match next {
                Some(child) => node = child,
                None => break,
            }
            if node.rules.is_some() {
                hit = node.rules.as_deref();
            }
        }
        hit.unwrap_or_default()
    }
}

/// Builds the prefix trie of [`RuleIndex`] from each prefix literal's own rules.
fn build_trie(prefixes: &BTreeMap<&str, Vec<usize>>) -> Vec<TrieNode> {
    if prefixes.is_empty() {
        return Vec::new();
    }
    // Children as maps while building; a node's parent always has a smaller index.
    let mut children: Vec<BTreeMap<u8, usize>> = vec![BTreeMap::new()];
    let mut own: Vec<Option<&[usize]>> = vec![None];
    let mut parent: Vec<usize> = vec![0];
    for (prefix, rules) in prefixes {
        let mut at = 0;
        for byte in prefix.bytes() {
            let fresh = children.len();
            let next = match children.get_mut(at) {
                Some(map) => *map.entry(byte).or_insert(fresh),
                None => break,
            };
            if next == fresh {
                children.push(BTreeMap::new());
                own.push(None);
                parent.push(at);
            }
            at = next;
        }
        if let Some(slot) = own.get_mut(at) {
            *slot = Some(rules);
        }
    }
    // In index order every parent comes first: each node inherits the closed rule
    // list of its nearest ancestor that ends a prefix (itself included).
    let mut closed: Vec<Option<Box<[usize]>>> = Vec::with_capacity(own.len());
    let mut nearest: Vec<Option<usize>> = Vec::with_capacity(own.len());
    for (i, own_rules) in own.iter().enumerate() {
        let inherited = match i {
            0 => None,
            _ => parent
                .get(i)
                .and_then(|p| nearest.get(*p).copied().flatten()),
        };
        match own_rules {
            Some(rules) => {
                let base = inherited
                    .and_then(|a| closed.get(a))
                    .and_then(Option::as_deref)
                    .unwrap_or_default();
                closed.push(Some(merge_sorted(base, rules).into_boxed_slice()));
                nearest.push(Some(i));
            }
            None => {
                closed.push(None);
                nearest.push(inherited);
            }
        }
    }
    children
        .into_iter()
        .zip(closed)
        .map(|(map, rules)| TrieNode {
            children: map
                .into_iter()
                .map(|(b, c)| (b, u32::try_from(c).unwrap_or(u32::MAX)))
                .collect(),
            rules,
        })
        .collect()
}

/// The rules a [`RuleIndex`] selects: a merge of sorted lists, in rule order, each
/// rule once.
#[derive(Clone, Debug)]
pub(crate) struct Candidates<'i> {
    lists: [&'i [usize]; 3],
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let next = self.lists.iter().filter_map(|l| l.first()).min().copied()?;
        for list in &mut self.lists {
            if let Some((first, rest)) = list.split_first()
                && *first == next
            {
                *list = rest;
            }
        }
        Some(next)
    }
}

/// Sorted, deduplicated union of two sorted lists.
fn merge_sorted(a: &[usize], b: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = a.iter().chain(b).copied().collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A guard: request path, literal values, and whether the values are prefixes.
type Guard = (Vec<String>, Vec<String>, bool);

/// The guards of a condition, one per conjunct that is a guard.
fn guards(node: &crate::fast::Node, out: &mut Vec<Guard>) {
    use crate::fast::{CmpOp, Lit, Node, StrFn};
    let full_path = |var: &u8, fields: &[String]| -> Option<Vec<String>> {
        // Signals are numbers and `now` an int: only string fields are indexed.
        let root = VARIABLES.get(usize::from(*var))?;
        if matches!(*root, "signals" | "now") {
            return None;
        }
        let mut p = vec![(*root).to_owned()];
        p.extend(fields.iter().cloned());
        Some(p)
    };
    match node {
        Node::And(a, b) => {
            guards(a, out);
            guards(b, out);
        }
        Node::Cmp(CmpOp::Eq, a, b) => {
            if let (Node::Path(v, f), Node::Lit(Lit::Str(s)))
            | (Node::Lit(Lit::Str(s)), Node::Path(v, f)) = (a.as_ref(), b.as_ref())
                && let Some(p) = full_path(v, f)
            {
                out.push((p, vec![s.clone()], false));
            }
        }
        Node::StrFn(StrFn::StartsWith, target, arg) => {
            if let (Node::Path(v, f), Node::Lit(Lit::Str(s))) = (target.as_ref(), arg.as_ref())
                && let Some(p) = full_path(v, f)
            {
                out.push((p, vec![s.clone()], true));
            }
        }
        Node::In(a, b) => {
            if let (Node::Path(v, f), Node::List(items)) = (a.as_ref(), b.as_ref()) {
                let lits: Option<Vec<String>> = items
                    .iter()
                    .map(|i| match i {
                        Node::Lit(Lit::Str(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if let (Some(p), Some(lits)) = (full_path(v, f), lits) {
                    out.push((p, lits, false));
                }
            }
        }
        _ => {}
    }
}

fn conjuncts<'e>(e: &'e cel::IdedExpr, out: &mut Vec<&'e cel::IdedExpr>) {
    if let cel::common::ast::Expr::Call(call) = &e.expr
        && call.func_name == cel::common::ast::operators::LOGICAL_AND
        && call.target.is_none()
        && call.args.len() == 2
    {
        for arg in &call.args {
            conjuncts(arg, out);
        }
        return;
    }
    out.push(e);
}

fn build_index(rules: &[Rule]) -> Option<RuleIndex> {
    let per_rule: Vec<Vec<Guard>> = rules
        .iter()
        .map(|r| {
            // Guards come from the top-level conjuncts, each translated on its own,
            // so a condition partly outside the native subset is still indexed.
            let mut conj = Vec::new();
            conjuncts(r.cond.program.expression(), &mut conj);
            let mut g = Vec::new();
            for c in conj {
                if let Some(node) = crate::fast::compile(c) {
                    guards(&node, &mut g);
                }
            }
            g
        })
        .collect();
    // Index by the path that guards the most rules (ties: the smallest path).
    let mut counts: BTreeMap<&Vec<String>, usize> = BTreeMap::new();
    for g in &per_rule {
        let distinct: BTreeSet<&Vec<String>> = g.iter().map(|(p, _, _)| p).collect();
        for p in distinct {
            *counts.entry(p).or_default() += 1;
        }
    }
    let best = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    if *best.1 < 2 {
        return None;
    }
    let path = (*best.0).clone();
    let mut exact: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut prefixes: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut always = Vec::new();
    for (i, g) in per_rule.iter().enumerate() {
        match g.iter().find(|(p, _, _)| *p == path) {
            Some((_, lits, is_prefix)) => {
                let map = if *is_prefix {
                    &mut prefixes
                } else {
                    &mut exact
                };
                for l in lits {
                    let rules = map.entry(l.as_str()).or_default();
                    if rules.last() != Some(&i) {
                        rules.push(i);
                    }
                }
            }
            None => always.push(i),
        }
    }
    Some(RuleIndex {
        dotted: Arc::from(path.join(".")),
        path,
        exact: exact
            .into_iter()
            .map(|(k, v)| (Box::from(k), v.into_boxed_slice()))
            .collect(),
        trie: build_trie(&prefixes),
        always: always.into_boxed_slice(),
    })
}

/// The declared range and default of a signal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SignalRange {
    /// Smallest accepted value.
    pub min: f64,
    /// Largest accepted value.
    pub max: f64,
    /// Used by the survival score when the request omits the signal.
    pub default: Option<f64>,
}

impl Default for SignalRange {
    fn default() -> Self {
        Self {
            min: 0.0,
            max: 1.0,
            default: None,
        }
    }
}

/// Adaptive-bias settings of a policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveSettings {
    /// Weight of one outcome.
    pub learning_rate: f64,
    /// Absolute bound of the bias.
    pub cap: f64,
    /// Time half-life in milliseconds.
    pub half_life_ms: i64,
    /// Traffic half-life in decisions.
    pub half_life_decisions: u32,
    /// Whether a negative bias may block what passes without it.
    pub may_tighten: bool,
}

#[derive(Debug)]
pub(crate) struct Rule {
    pub(crate) name: Arc<str>,
    pub(crate) cond: CompiledExpr,
    pub(crate) effect: Effect,
    pub(crate) reason_code: String,
    /// The explanation a match reports: the rule's `explanation`, or
    /// `rule 'NAME' matched`.
    pub(crate) matched_explanation: String,
    pub(crate) on_error: OnError,
    pub(crate) approvers: Vec<String>,
    pub(crate) min_approvals: u32,
    pub(crate) review_expires_ms: i64,
}

#[derive(Debug)]
pub(crate) struct Survival {
    pub(crate) expr: CompiledExpr,
    pub(crate) threshold: f64,
}

/// Comparison of a reality band.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    pub(crate) fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Cmp::Lt => value < bound,
            Cmp::Lte => value <= bound,
            Cmp::Gt => value > bound,
            Cmp::Gte => value >= bound,
        }
    }
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Band {
    pub(crate) signal: Arc<str>,
    pub(crate) cmp: Cmp,
    pub(crate) bound: f64,
    /// `< 0.15`, for the trace.
    pub(crate) bound_text: Arc<str>,
    pub(crate) required: bool,
    pub(crate) action_types: Option<Vec<String>>,
}

#[derive(Debug)]
pub(crate) enum KeyPart {
    /// A dotted request path read directly (`tenant`, `actor.id`).
    Path(Vec<String>),
    /// Any other CEL expression.
    Cel(Box<CompiledExpr>),
}

#[derive(Debug)]
pub(crate) struct Throttle {
    pub(crate) parts: Vec<KeyPart>,
    pub(crate) gcra: Gcra,
    /// `,"<policy id>",<index>`: the constant middle of every bucket key.
    pub(crate) key_middle: String,
}

impl CompiledPolicy {
    /// Validates and compiles a parsed document. `text_sha256` is the hex SHA-256 of
    /// the text it was parsed from, recorded in the policy's stamp.
    pub fn compile(doc: PolicyDocument, text_sha256: String) -> Result<Self, PolicyError> {
        let mut c = Compiler::default();
        c.check_id(&doc.id);
        let signals = c.signals(&doc);
        let declared: Option<BTreeSet<&str>> = if doc.signals.is_empty() {
            None
        } else {
            Some(doc.signals.keys().map(String::as_str).collect())
        };
        let rules = c.rules(&doc.rules, declared.as_ref());
        let survival = doc.survival.as_ref().and_then(|s| {
            let expr = c.expr("survival.score", &s.score, declared.as_ref())?;
            if !(s.threshold.is_finite() && (0.0..=1.0).contains(&s.threshold)) {
                c.issue(
                    "survival.threshold",
                    format!("threshold out of range: {} is not in [0, 1]", s.threshold),
                );
                return None;
            }
            Some(Survival {
                expr,
                threshold: s.threshold,
            })
        });
        let bands = c.bands(&doc.reality, &signals);
        let throttles = c.throttles(&doc.throttle, &doc.id);
        let adaptive = doc.adaptive.as_ref().and_then(|a| c.adaptive(a));
        if !c.issues.is_empty() {
            return Err(PolicyError { issues: c.issues });
        }
        let mut needed = VarSet::default();
        for rule in &rules {
            needed = needed.union(rule.cond.vars);
        }
        if let Some(s) = &survival {
            needed = needed.union(s.expr.vars);
        }
        for t in &throttles {
            for part in &t.parts {
                if let KeyPart::Cel(e) = part {
                    needed = needed.union(e.vars);
                }
            }
        }
        let mut rule_paths = BTreeSet::new();
        for rule in &rules {
            rule_paths.extend(rule.cond.paths.iter().cloned());
        }
        let rule_paths: Vec<(Vec<String>, Arc<str>)> = rule_paths
            .into_iter()
            .map(|p| {
                let dotted = Arc::from(p.join("."));
                (p, dotted)
            })
            .collect();
        let index = build_index(&rules);
        let mut history_calls = BTreeSet::new();
        for rule in &rules {
            history_calls.extend(rule.cond.history.iter().cloned());
        }
        if let Some(s) = &survival {
            history_calls.extend(s.expr.history.iter().cloned());
        }
        let version = doc.version.unwrap_or(1);
        Ok(CompiledPolicy {
            stamp: PolicyStamp {
                id: Arc::from(doc.id.as_str()),
                version,
                text_sha256: Arc::from(text_sha256),
            },
            default_effect: doc.default_effect,
            signals,
            rules,
            survival,
            bands,
            throttles,
            adaptive,
            needed,
            rule_paths,
            index,
            history_calls: history_calls.into_iter().collect(),
            document: doc,
        })
    }

    /// The policy's id, version and text hash.
    pub fn stamp(&self) -> &PolicyStamp {
        &self.stamp
    }

    /// The policy id.
    pub fn id(&self) -> &str {
        &self.stamp.id
    }

    /// The version number.
    pub fn version(&self) -> u32 {
        self.stamp.version
    }

    /// The document this policy was compiled from.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// The same compiled policy under another version number (the store assigns
    /// versions on publish).
    pub fn with_version(mut self, version: u32) -> Self {
        self.stamp.version = version;
        self.document.version = Some(version);
        self
    }

    /// Whether a rule or the survival score reads the history (`history.count`/`sum`).
    pub fn reads_history(&self) -> bool {
        !self.history_calls.is_empty()
    }

    /// The scopes the policy's history calls read and the longest window, in ms.
    pub fn history_needs(&self) -> Option<(Vec<crate::history::Scope>, i64)> {
        let window = self.history_calls.iter().map(|c| c.window_ms).max()?;
        let mut scopes: Vec<_> = self.history_calls.iter().map(|c| c.scope).collect();
        scopes.sort();
        scopes.dedup();
        Some((scopes, window))
    }

    /// The declared range of `signal`, or `[0, 1]` when it is not declared.
    pub fn signal_range(&self, signal: &str) -> SignalRange {
        self.signals
            .iter()
            .find(|(name, _)| name == signal)
            .map(|(_, r)| *r)
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct Compiler {
    issues: Vec<PolicyIssue>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn valid_reason_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// A dotted path of identifiers rooted at a request variable, read without CEL.
fn simple_path(text: &str) -> Option<Vec<String>> {
    let parts: Vec<String> = text.trim().split('.').map(str::to_owned).collect();
    let ident = |s: &str| {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !parts.iter().all(|p| ident(p)) {
        return None;
    }
    match (parts.first().map(String::as_str), parts.len()) {
        (Some("tenant" | "source" | "intent"), 1) => Some(parts),
        (Some("actor" | "action" | "context"), n) if n >= 2 => Some(parts),
        _ => None,
    }
}

impl Compiler {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(PolicyIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check_id(&mut self, id: &str) {
        if !valid_id(id) {
            self.issue(
                "id",
                format!("invalid policy id '{id}': use 1 to 128 of [A-Za-z0-9_.-]"),
            );
        }
    }

    fn duration_ms(&mut self, path: &str, text: &str) -> Option<i64> {
        match humantime::parse_duration(text.trim()) {
            Ok(d) => {
                let ms = duration_to_ms(d);
                match ms {
                    Some(ms) if (1..=MAX_DURATION_MS).contains(&ms) => Some(ms),
                    _ => {
                        self.issue(
                            path,
                            format!(
                                "bad duration '{text}': must be a whole number of milliseconds between 1ms and 366d"
                            ),
                        );
                        None
                    }
                }
            }
            Err(e) => {
                self.issue(
                    path,
                    format!("bad duration '{text}': {e} (write e.g. 250ms, 5s, 24h)"),
                );
                None
            }
        }
    }

    fn expr(
        &mut self,
        path: &str,
        source: &str,
        declared: Option<&BTreeSet<&str>>,
    ) -> Option<CompiledExpr> {
        match expr::compile(source) {
            Ok(e) => {
                if let Some(declared) = declared
                    && let Some(unknown) = e
                        .signal_refs
                        .iter()
                        .find(|s| !declared.contains(s.as_str()))
                {
                    self.issue(
                        path,
                        format!("unknown signal '{unknown}': declare it under `signals`"),
                    );
                    return None;
                }
                Some(e)
            }
            Err(message) => {
                self.issue(path, message);
                None
            }
        }
    }

    fn signals(&mut self, doc: &PolicyDocument) -> Vec<(String, SignalRange)> {
        let mut out = Vec::with_capacity(doc.signals.len());
        for (name, decl) in &doc.signals {
            let path = format!("signals.{name}");
            let range = SignalRange {
                min: decl.min.unwrap_or(0.0),
                max: decl.max.unwrap_or(1.0),
                default: decl.default,
            };
            if !(range.min.is_finite() && range.max.is_finite() && range.min < range.max) {
                self.issue(
                    &path,
                    format!(
                        "threshold out of range: min {} must be below max {}",
                        range.min, range.max
                    ),
                );
                continue;
            }
            if let Some(d) = range.default
                && !(d.is_finite() && d >= range.min && d <= range.max)
            {
                self.issue(
                    format!("{path}.default"),
                    format!(
                        "threshold out of range: default {d} is not in [{}, {}]",
                        range.min, range.max
                    ),
                );
                continue;
            }
            out.push((name.clone(), range));
        }
        out
    }

    fn rules(&mut self, docs: &[RuleDoc], declared: Option<&BTreeSet<&str>>) -> Vec<Rule> {
        let mut names = BTreeSet::new();
        let mut out = Vec::with_capacity(docs.len());
        for (i, r) in docs.iter().enumerate() {
            let base = format!("rules[{i}]");
            if r.name.trim().is_empty() {
                self.issue(format!("{base}.name"), "a rule needs a name");
            } else if !names.insert(r.name.as_str()) {
                self.issue(
                    format!("{base}.name"),
                    format!("duplicate rule name '{}'", r.name),
                );
            }
            if !valid_reason_code(&r.reason_code) {
                self.issue(
                    format!("{base}.reason_code"),
                    format!(
                        "invalid reason code '{}': use 1 to 64 of [A-Z0-9_]",
                        r.reason_code
                    ),
                );
            }
            let cond = self.expr(&format!("{base}.when"), &r.when, declared);
            let (mut approvers, mut min_approvals, mut expires) = (Vec::new(), 1, 24 * 3600 * 1000);
            if let Some(review) = &r.review {
                if matches!(r.effect, Effect::Allow | Effect::Block) {
                    self.issue(
                        format!("{base}.review"),
                        "review settings apply only to effects escalate and review",
                    );
                }
                approvers.clone_from(&review.approvers);
                if let Some(n) = review.min_approvals {
                    if !(1..=10).contains(&n) {
                        self.issue(
                            format!("{base}.review.min_approvals"),
                            format!("threshold out of range: {n} is not in [1, 10]"),
                        );
                    }
                    min_approvals = n;
                }
                if let Some(text) = &review.expires_in
                    && let Some(ms) = self.duration_ms(&format!("{base}.review.expires_in"), text)
                {
                    expires = ms;
                }
            }
            if let Some(cond) = cond {
                out.push(Rule {
                    name: Arc::from(r.name.as_str()),
                    cond,
                    effect: r.effect,
                    reason_code: r.reason_code.clone(),
                    matched_explanation: r
                        .explanation
                        .clone()
                        .unwrap_or_else(|| format!("rule '{}' matched", r.name)),
                    on_error: r.on_error,
                    approvers,
                    min_approvals,
                    review_expires_ms: expires,
                });
            }
        }
        out
    }

    fn bands(&mut self, docs: &[BandDoc], signals: &[(String, SignalRange)]) -> Vec<Band> {
        let mut out = Vec::new();
        for (i, b) in docs.iter().enumerate() {
            let base = format!("reality[{i}]");
            if b.signal.trim().is_empty() {
                self.issue(format!("{base}.signal"), "a band needs a signal");
                continue;
            }
            let range = signals
                .iter()
                .find(|(n, _)| *n == b.signal)
                .map(|(_, r)| *r)
                .unwrap_or_default();
            let bounds = [
                ("lt", b.lt, Cmp::Lt),
                ("lte", b.lte, Cmp::Lte),
                ("gt", b.gt, Cmp::Gt),
                ("gte", b.gte, Cmp::Gte),
            ];
            let mut any = false;
            for (field, bound, cmp) in bounds {
                let Some(bound) = bound else { continue };
                any = true;
                if !(bound.is_finite() && bound >= range.min && bound <= range.max) {
                    self.issue(
                        format!("{base}.{field}"),
                        format!(
                            "threshold out of range: {bound} is not in [{}, {}], the range of signal '{}'",
                            range.min, range.max, b.signal
                        ),
                    );
                    continue;
                }
                out.push(Band {
                    signal: Arc::from(b.signal.as_str()),
                    cmp,
                    bound,
                    bound_text: Arc::from(format!("{} {bound}", cmp.symbol())),
                    required: b.required,
                    action_types: b.action_types.clone(),
                });
            }
            if !any {
                self.issue(base, "a band needs at least one bound (lt, lte, gt or gte)");
            }
        }
        out
    }

    fn throttles(&mut self, docs: &[ThrottleDoc], policy_id: &str) -> Vec<Throttle> {
        let mut out = Vec::new();
        for (i, t) in docs.iter().enumerate() {
            let base = format!("throttle[{i}]");
            if t.key.is_empty() {
                self.issue(
                    format!("{base}.key"),
                    "a bucket needs at least one key attribute",
                );
            }
            let mut parts = Vec::with_capacity(t.key.len());
            for (j, k) in t.key.iter().enumerate() {
                if let Some(path) = simple_path(k) {
                    parts.push(KeyPart::Path(path));
                } else if let Some(e) = self.expr(&format!("{base}.key[{j}]"), k, None) {
                    parts.push(KeyPart::Cel(Box::new(e)));
                }
            }
            if !(1..=MAX_CAPACITY).contains(&t.capacity) {
                self.issue(
                    format!("{base}.capacity"),
                    format!(
                        "threshold out of range: capacity {} is not in [1, {MAX_CAPACITY}]",
                        t.capacity
                    ),
                );
            }
            let interval = self.duration_ms(&format!("{base}.refill_every"), &t.refill_every);
            if let Some(interval_ms) = interval
                && parts.len() == t.key.len()
                && (1..=MAX_CAPACITY).contains(&t.capacity)
            {
                let id = serde_json::Value::String(policy_id.to_owned());
                out.push(Throttle {
                    key_middle: format!(",{id},{i}"),
                    parts,
                    gcra: Gcra {
                        capacity: t.capacity,
                        interval_ms,
                    },
                });
            }
        }
        out
    }

    fn adaptive(&mut self, a: &AdaptiveDoc) -> Option<AdaptiveSettings> {
        let mut ok = true;
        if !(a.learning_rate.is_finite() && (0.0..=1.0).contains(&a.learning_rate)) {
            self.issue(
                "adaptive.learning_rate",
                format!(
                    "threshold out of range: {} is not in [0, 1]",
                    a.learning_rate
                ),
            );
            ok = false;
        }
        if !(a.cap.is_finite() && (0.0..=0.5).contains(&a.cap)) {
            self.issue(
                "adaptive.cap",
                format!("threshold out of range: {} is not in [0, 0.5]", a.cap),
            );
            ok = false;
        }
        if a.half_life_decisions == 0 {
            self.issue(
                "adaptive.half_life_decisions",
                "threshold out of range: must be at least 1",
            );
            ok = false;
        }
        let half_life_ms = self.duration_ms("adaptive.half_life", &a.half_life);
        match (ok, half_life_ms) {
            (true, Some(half_life_ms)) => Some(AdaptiveSettings {
                learning_rate: a.learning_rate,
                cap: a.cap,
                half_life_ms,
                half_life_decisions: a.half_life_decisions,
                may_tighten: a.may_tighten,
            }),
            _ => None,
        }
    }
}

fn duration_to_ms(d: Duration) -> Option<i64> {
    let nanos = d.as_nanos();
    if !nanos.is_multiple_of(1_000_000) {
        return None;
    }
    i64::try_from(nanos / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::policy::{PolicyFormat, compile_policy};

    /// A rule of the generated policies, and whether it admits an `action.type`.
    #[derive(Clone, Debug)]
    enum Spec {
        Exact(String),
        Prefix(String),
        In(Vec<String>),
        /// Two prefix guards on the path: the first one is the one indexed.
        TwoPrefixes(String, String),
        Unguarded,
    }

    impl Spec {
        fn when(&self) -> String {
            match self {
                Spec::Exact(l) => format!("action.type == \"{l}\""),
                Spec::Prefix(l) => format!("action.type.startsWith(\"{l}\")"),
                Spec::In(ls) => {
                    let items: Vec<String> = ls.iter().map(|l| format!("\"{l}\"")).collect();
                    format!("action.type in [{}]", items.join(", "))
                }
                Spec::TwoPrefixes(a, b) => {
                    format!("action.type.startsWith(\"{a}\") && action.type.startsWith(\"{b}\")")
                }
                Spec::Unguarded => "action.amount > 1".to_owned(),
            }
        }

        fn admits(&self, value: &str) -> bool {
            match self {
                Spec::Exact(l) => value == l,
                Spec::Prefix(l) | Spec::TwoPrefixes(l, _) => value.starts_with(l.as_str()),
                Spec::In(ls) => ls.iter().any(|l| l == value),
                Spec::Unguarded => true,
            }
        }
    }

    fn spec() -> impl Strategy<Value = Spec> {
        let lit = "[ab]{0,3}";
        prop_oneof![
            lit.prop_map(Spec::Exact),
            lit.prop_map(Spec::Prefix),
            prop::collection::vec(lit, 1..4).prop_map(Spec::In),
            (lit, lit).prop_map(|(a, b)| Spec::TwoPrefixes(a, b)),
            Just(Spec::Unguarded),
        ]
    }

    proptest! {
        /// The index selects exactly the rules whose indexed guard admits the value
        /// (and every rule without one), in rule order, each once.
        #[test]
        fn candidates_are_the_rules_whose_guard_admits_the_value(
            specs in prop::collection::vec(spec(), 1..16),
            values in prop::collection::vec("[ab]{0,4}", 1..8),
        ) {
            let mut text = String::from("id: idx\ndefault_effect: allow\nrules:\n");
            for (i, s) in specs.iter().enumerate() {
                text.push_str(&format!(
                    "  - {{name: r{i}, when: '{}', effect: block, reason_code: R{i}}}\n",
                    s.when()
                ));
            }
            let policy = compile_policy(&text, PolicyFormat::Yaml)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let guarded = specs.iter().filter(|s| !matches!(s, Spec::Unguarded)).count();
            match &policy.index {
                None => prop_assert!(guarded < 2, "no index for {guarded} guarded rules"),
                Some(index) => {
                    prop_assert_eq!(&index.path, &vec!["action".to_owned(), "type".to_owned()]);
                    for value in &values {
                        let got: Vec<usize> = index.candidates(value).collect();
                        let expected: Vec<usize> = specs
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.admits(value))
                            .map(|(i, _)| i)
                            .collect();
                        prop_assert_eq!(got, expected, "value {:?}", value);
                    }
                }
            }
        }
    }

    /// Nested and sibling prefixes: the longest matching prefix is found when a longer
    /// literal shares the value's first bytes but does not match, and its rules come
    /// with those of the shorter prefixes.
    #[test]
    fn the_longest_matching_prefix_brings_the_shorter_ones() {
        let text = "id: idx\ndefault_effect: allow\nrules:\n\
            - {name: a, when: 'action.type.startsWith(\"a\")', effect: block, reason_code: A}\n\
            - {name: ab, when: 'action.type.startsWith(\"ab\")', effect: block, reason_code: AB}\n\
            - {name: abb, when: 'action.type.startsWith(\"abb\")', effect: block, reason_code: ABB}\n\
            - {name: b, when: 'action.type == \"abc\"', effect: block, reason_code: B}\n";
        let policy = compile_policy(text, PolicyFormat::Yaml).unwrap_or_else(|e| panic!("{e}"));
        let index = policy.index.as_ref().unwrap_or_else(|| panic!("indexed"));
        let of = |v: &str| index.candidates(v).collect::<Vec<_>>();
        assert_eq!(of("abc"), vec![0, 1, 3]);
        assert_eq!(of("abbz"), vec![0, 1, 2]);
        assert_eq!(of("ac"), vec![0]);
        assert_eq!(of("b"), Vec::<usize>::new());
        assert_eq!(of(""), Vec::<usize>::new());
    }
}
