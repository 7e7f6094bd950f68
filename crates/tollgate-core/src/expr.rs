//! CEL glue: compiling conditions once, checking what they reference, and evaluating
//! them against one request's variables.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr};
use cel::objects::{Key, Map as CelMap};
use cel::{Context, Env, IdedExpr, Program, Value as CelValue};
use serde_json::Value as Json;

use crate::request::DecisionRequest;
use crate::time::UnixMillis;
use crate::vars::{VARIABLES, VarSet};

/// Longest condition accepted, in bytes.
pub(crate) const MAX_EXPRESSION_LEN: usize = 4096;
/// Deepest expression tree accepted.
pub(crate) const MAX_EXPRESSION_DEPTH: usize = 64;
/// Deepest nesting of brackets (`(`, `[`, `{`) and conditionals (`?:`) accepted in
/// the source text. The `cel` crate's parser recurses several frames per level with no
/// limit of its own, so deeper input could overflow the stack (which aborts the
/// process) before any tree exists to measure: this is checked on the text first.
pub(crate) const MAX_SOURCE_NESTING: usize = 24;
/// Most comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) in one
/// expression.
pub(crate) const MAX_COMPREHENSIONS: usize = 8;

// The evaluation cost limit. CEL as run by the `cel` crate has no step budget, so the
// bound is enforced at compile time: with at most MAX_COMPREHENSIONS comprehensions,
// none inside another's body and none iterating over another's result, every
// comprehension walks a list that is in the request (bounded by the body limit) or
// written in the expression (bounded by MAX_EXPRESSION_LEN) exactly once, so one
// evaluation does work linear in (expression size x request size). Without these
// rules `l.all(x, l.all(y, l.all(z, ...)))` or `l.map(x, l).map(y, y + y)` grows
// polynomially with the request, which a policy author could use to stall the engine.

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression with what it references.
#[derive(Debug)]
pub(crate) struct CompiledExpr {
    pub(crate) program: Program,
    pub(crate) vars: VarSet,
    /// `signals.NAME` selections found in the expression.
    pub(crate) signal_refs: BTreeSet<String>,
    /// Request paths the expression reads (`action.amount`), for the trace.
    pub(crate) paths: BTreeSet<Vec<String>>,
    /// The native accelerator, when the expression is inside its subset.
    pub(crate) fast: Option<crate::fast::Node>,
    /// The `history.count` / `history.sum` aggregates it reads.
    pub(crate) history: Vec<crate::history::HistoryCall>,
}

/// Compile `source` and check that it references only known variables.
pub(crate) fn compile(source: &str) -> Result<CompiledExpr, String> {
    if source.trim().is_empty() {
        return Err("empty expression".to_owned());
    }
    if source.len() > MAX_EXPRESSION_LEN {
        return Err(format!(
            "expression is {} bytes long; at most {MAX_EXPRESSION_LEN} are allowed",
            source.len()
        ));
    }
    source_nesting(source)?;
    let program = ENV
        .compile(source)
        .map_err(|e| format!("invalid CEL: {}", one_line(&e.to_string())))?;
    let mut walk = Walk::default();
    walk.visit(program.expression(), 0, &mut Vec::new());
    if let Some(e) = walk.errors.first() {
        return Err(e.clone());
    }
    if walk.too_deep {
        return Err(format!(
            "expression nests deeper than {MAX_EXPRESSION_DEPTH} levels"
        ));
    }
    if let Some(e) = walk.cost_errors.first() {
        return Err(e.clone());
    }
    if walk.comprehensions > MAX_COMPREHENSIONS {
        return Err(format!(
            "expression has {} comprehensions (all, exists, exists_one, map, filter); \
             at most {MAX_COMPREHENSIONS} are allowed (evaluation cost limit)",
            walk.comprehensions
        ));
    }
    let mut vars = VarSet::default();
    for name in &walk.free {
        match VARIABLES.iter().position(|v| v == name) {
            Some(index) => vars.insert(index),
            None => {
                return Err(format!(
                    "unknown variable '{name}' (known: {})",
                    VARIABLES.join(", ")
                ));
            }
        }
    }
    Ok(CompiledExpr {
        vars,
        signal_refs: walk.signal_refs,
        paths: walk.paths,
        fast: crate::fast::compile(program.expression()),
        history: walk.history.into_iter().collect(),
        program,
    })
}

/// Checks, on the text, that brackets and conditionals nest at most
/// [`MAX_SOURCE_NESTING`] deep, skipping string literals (quoted, triple-quoted, raw,
/// bytes). An unterminated string is an error here: it is a syntax error anyway, and
/// a scan that lost track of strings could under-count.
fn source_nesting(source: &str) -> Result<(), String> {
    let bytes = source.as_bytes();
    // Conditionals (`?`) opened at each open bracket level: they end with it.
    let mut levels: Vec<usize> = vec![0];
    let mut depth = 0usize;
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\'' | b'"' => {
                // The identifier-like run right before the quote is its prefix.
                let prefix_start = bytes
                    .get(..i)
                    .and_then(|before| {
                        before
                            .iter()
                            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                    })
                    .map_or(0, |p| p + 1);
                let prefix = source
                    .get(prefix_start..i)
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let raw = matches!(prefix.as_str(), "r" | "br" | "rb");
                let triple = bytes.get(i + 1) == Some(&b) && bytes.get(i + 2) == Some(&b);
                let quote_len = if triple { 3 } else { 1 };
                let mut j = i + quote_len;
                loop {
                    match bytes.get(j) {
                        None => return Err("unterminated string literal".to_owned()),
                        Some(b'\\') if !raw => j += 2,
                        Some(&c)
                            if c == b
                                && (!triple
                                    || bytes.get(j + 1) == Some(&b)
                                        && bytes.get(j + 2) == Some(&b)) =>
                        {
                            j += quote_len;
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j;
                continue;
            }
            b'(' | b'[' | b'{' => {
                levels.push(0);
                depth += 1;
            }
            b')' | b']' | b'}' if levels.len() > 1 => {
                let closed = levels.pop().unwrap_or(0);
                depth = depth.saturating_sub(1 + closed);
            }
            b'?' => {
                if let Some(last) = levels.last_mut() {
                    *last += 1;
                }
                depth += 1;
            }
            _ => {}
        }
        if depth > MAX_SOURCE_NESTING {
            return Err(format!(
                "expression nests deeper than {MAX_SOURCE_NESTING} levels of brackets and conditionals"
            ));
        }
        i += 1;
    }
    Ok(())
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Collects free identifiers (those not bound by a comprehension) and `signals.X`.
#[derive(Default)]
struct Walk {
    free: BTreeSet<String>,
    signal_refs: BTreeSet<String>,
    paths: BTreeSet<Vec<String>>,
    history: BTreeSet<crate::history::HistoryCall>,
    errors: Vec<String>,
    too_deep: bool,
    /// Comprehensions seen so far.
    comprehensions: usize,
    /// Comprehension bodies the walk is inside of.
    in_comprehension: usize,
    /// Violations of the evaluation cost rules.
    cost_errors: Vec<String>,
}

/// The dotted path of a chain of selections rooted at an identifier (`a.b.c`).
fn select_chain(e: &IdedExpr) -> Option<Vec<String>> {
    match &e.expr {
        Expr::Ident(name) => Some(vec![name.clone()]),
        Expr::Select(select) if !select.test => {
            let mut chain = select_chain(&select.operand)?;
            chain.push(select.field.clone());
            Some(chain)
        }
        _ => None,
    }
}

impl Walk {
    fn visit(&mut self, e: &IdedExpr, depth: usize, bound: &mut Vec<String>) {
        if depth > MAX_EXPRESSION_DEPTH {
            self.too_deep = true;
            return;
        }
        let d = depth + 1;
        match &e.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                if !name.starts_with('@') && !bound.iter().any(|b| b == name) {
                    self.free.insert(name.clone());
                }
            }
            Expr::Select(select) => {
                if let Some(chain) = select_chain(e) {
                    let root_bound = chain.first().is_some_and(|r| bound.iter().any(|b| b == r));
                    if !root_bound {
                        // Record the longest chain only; prefixes add nothing.
                        self.paths.retain(|p| !chain.starts_with(p));
                        if !self.paths.iter().any(|p| p.starts_with(&chain)) {
                            self.paths.insert(chain);
                        }
                    }
                }
                if let Expr::Ident(name) = &select.operand.expr
                    && name == "signals"
                    && !bound.iter().any(|b| b == name)
                {
                    self.signal_refs.insert(select.field.clone());
                }
                self.visit(&select.operand, d, bound);
            }
            Expr::Call(call) => {
                match crate::history::parse_call(e) {
                    Some(Ok(h)) => {
                        self.history.insert(h);
                        return;
                    }
                    Some(Err(msg)) => {
                        self.errors.push(msg);
                        return;
                    }
                    None => {}
                }
                if let Some(target) = &call.target {
                    self.visit(target, d, bound);
                }
                for arg in &call.args {
                    self.visit(arg, d, bound);
                }
            }
            Expr::List(list) => {
                for el in &list.elements {
                    self.visit(el, d, bound);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    self.visit_entry(&entry.expr, d, bound);
                }
            }
            Expr::Struct(s) => {
                for entry in &s.entries {
                    self.visit_entry(&entry.expr, d, bound);
                }
            }
            Expr::Comprehension(comp) => {
                self.comprehensions += 1;
                if self.in_comprehension > 0 {
                    self.cost_errors.push(
                        "a comprehension (all, exists, exists_one, map, filter) inside \
                         another one's body is not allowed (evaluation cost limit)"
                            .to_owned(),
                    );
                }
                let seen = self.comprehensions;
                self.visit(&comp.iter_range, d, bound);
                if self.comprehensions > seen {
                    self.cost_errors.push(
                        "a comprehension may not iterate over another comprehension's \
                         result (evaluation cost limit)"
                            .to_owned(),
                    );
                }
                self.in_comprehension += 1;
                let before = bound.len();
                bound.push(comp.iter_var.clone());
                if let Some(v2) = &comp.iter_var2 {
                    bound.push(v2.clone());
                }
                bound.push(comp.accu_var.clone());
                self.visit(&comp.accu_init, d, bound);
                self.visit(&comp.loop_cond, d, bound);
                self.visit(&comp.loop_step, d, bound);
                self.visit(&comp.result, d, bound);
                bound.truncate(before);
                self.in_comprehension -= 1;
            }
        }
    }

    fn visit_entry(&mut self, entry: &EntryExpr, depth: usize, bound: &mut Vec<String>) {
        match entry {
            EntryExpr::StructField(f) => self.visit(&f.value, depth, bound),
            EntryExpr::MapEntry(m) => {
                self.visit(&m.key, depth, bound);
                self.visit(&m.value, depth, bound);
            }
        }
    }
}

/// The CEL variables of one request, built once per decision and shared by every
/// condition of every policy evaluated for it.
pub(crate) struct Activation<'a> {
    ctx: Context<'a, 'a>,
}

impl std::fmt::Debug for Activation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Activation")
    }
}

impl<'a> Activation<'a> {
    /// Builds only the variables in `needed`; `signals` is the effective signal map
    /// (request values with declared defaults filled in).
    pub(crate) fn new(
        request: &DecisionRequest,
        signals: &[(&str, f64)],
        now: UnixMillis,
        needed: VarSet,
        history: &[(crate::history::HistoryCall, f64)],
    ) -> Self {
        let mut ctx = Context::with_env(Arc::clone(&ENV));
        register_history(&mut ctx, history);
        for (index, name) in VARIABLES.iter().enumerate() {
            if !needed.contains(index) {
                continue;
            }
            let value = match index {
                0 => object(&request.actor),
                1 => object(&request.action),
                2 => object(&request.context),
                3 => {
                    let mut map = HashMap::with_capacity(signals.len());
                    for (k, v) in signals {
                        map.insert(Key::String(Arc::new((*k).to_owned())), CelValue::Float(*v));
                    }
                    CelValue::Map(CelMap { map: Arc::new(map) })
                }
                4 => opt_string(request.source.as_deref()),
                5 => opt_string(request.intent.as_deref()),
                6 => CelValue::String(Arc::new(request.tenant.clone())),
                _ => CelValue::Int(now.as_millis()),
            };
            ctx.add_variable_from_value(*name, value);
        }
        Activation { ctx }
    }

    /// Evaluates `expr` to a value, or a one-line error.
    pub(crate) fn eval(&self, expr: &CompiledExpr) -> Result<CelValue, String> {
        expr.program
            .execute(&self.ctx)
            .map_err(|e| one_line(&e.to_string()))
    }

    /// Evaluates a condition; anything but a boolean is an error.
    pub(crate) fn eval_bool(&self, expr: &CompiledExpr) -> Result<bool, String> {
        match self.eval(expr)? {
            CelValue::Bool(b) => Ok(b),
            other => Err(format!("condition gave {}, not a bool", type_name(&other))),
        }
    }

    /// Evaluates a numeric expression; anything but a finite number is an error.
    pub(crate) fn eval_number(&self, expr: &CompiledExpr) -> Result<f64, String> {
        let n = match self.eval(expr)? {
            CelValue::Float(f) => f,
            CelValue::Int(i) => i as f64,
            CelValue::UInt(u) => u as f64,
            other => return Err(format!("score gave {}, not a number", type_name(&other))),
        };
        if n.is_finite() {
            Ok(n)
        } else {
            Err(format!("score is not a finite number ({n})"))
        }
    }
}

fn type_name(v: &CelValue) -> &'static str {
    match v {
        CelValue::List(_) => "a list",
        CelValue::Map(_) => "a map",
        CelValue::Function(..) => "a function",
        CelValue::Int(_) => "an int",
        CelValue::UInt(_) => "a uint",
        CelValue::Float(_) => "a double",
        CelValue::String(_) => "a string",
        CelValue::Bytes(_) => "bytes",
        CelValue::Bool(_) => "a bool",
        CelValue::Null => "null",
        _ => "a value of another type",
    }
}

fn opt_string(s: Option<&str>) -> CelValue {
    match s {
        Some(s) => CelValue::String(Arc::new(s.to_owned())),
        None => CelValue::Null,
    }
}

fn object(map: &serde_json::Map<String, Json>) -> CelValue {
    let mut out = HashMap::with_capacity(map.len());
    for (k, v) in map {
        out.insert(Key::String(Arc::new(k.clone())), json(v));
    }
    CelValue::Map(CelMap { map: Arc::new(out) })
}

/// `history.count`, `history.sum` (reading the decision's precomputed aggregates) and
/// `duration("24h")` (milliseconds), for the `cel` crate.
fn register_history(ctx: &mut Context<'_, '_>, table: &[(crate::history::HistoryCall, f64)]) {
    use crate::history::{HistoryCall, Scope};
    let table: Arc<Vec<(HistoryCall, f64)>> = Arc::new(table.to_vec());
    let scope_of = |s: &str| match s {
        "actor" => Some(Scope::Actor),
        "source" => Some(Scope::Source),
        "tenant" => Some(Scope::Tenant),
        _ => None,
    };
    let t = Arc::clone(&table);
    let count = move |scope: Arc<String>, window: i64| -> Result<i64, cel::ExecutionError> {
        let call = HistoryCall {
            scope: scope_of(&scope)
                .ok_or_else(|| cel::ExecutionError::function_error("history.count", "bad scope"))?,
            field: None,
            window_ms: window,
        };
        t.iter()
            .find(|(c, _)| *c == call)
            .map(|(_, v)| *v as i64)
            .ok_or_else(|| {
                cel::ExecutionError::function_error("history.count", "aggregate not computed")
            })
    };
    let t = Arc::clone(&table);
    let sum = move |scope: Arc<String>,
                    field: Arc<String>,
                    window: i64|
          -> Result<f64, cel::ExecutionError> {
        let call = HistoryCall {
            scope: scope_of(&scope)
                .ok_or_else(|| cel::ExecutionError::function_error("history.sum", "bad scope"))?,
            field: Some(field.to_string()),
            window_ms: window,
        };
        t.iter()
            .find(|(c, _)| *c == call)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                cel::ExecutionError::function_error("history.sum", "aggregate not computed")
            })
    };
    let duration = |text: Arc<String>| -> Result<i64, cel::ExecutionError> {
        crate::history::parse_duration(&text)
            .map_err(|e| cel::ExecutionError::function_error("duration", e))
    };
    // These names are not in the standard library, so registration cannot conflict.
    let _ = ctx.add_function("history.count", count);
    let _ = ctx.add_function("history.sum", sum);
    let _ = ctx.add_function("duration", duration);
}

/// JSON to CEL as CEL's own JSON mapping does it: every JSON number is a double
/// (so `action.amount + history.sum(...)` adds doubles, and `action.amount > 10000`
/// compares a double with an int, which CEL allows).
fn json(v: &Json) -> CelValue {
    match v {
        Json::Null => CelValue::Null,
        Json::Bool(b) => CelValue::Bool(*b),
        Json::Number(n) => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => CelValue::String(Arc::new(s.clone())),
        Json::Array(items) => CelValue::List(Arc::new(items.iter().map(json).collect())),
        Json::Object(map) => object(map),
    }
}

/// Reads a dotted path (`actor.id`) of a request without CEL, for throttle keys.
pub(crate) fn read_path<'r>(
    request: &'r DecisionRequest,
    path: &[String],
) -> Option<PathValue<'r>> {
    let (head, rest) = path.split_first()?;
    let root = match head.as_str() {
        "tenant" if rest.is_empty() => return Some(PathValue::Str(&request.tenant)),
        "source" if rest.is_empty() => return request.source.as_deref().map(PathValue::Str),
        "intent" if rest.is_empty() => return request.intent.as_deref().map(PathValue::Str),
        "signals" if rest.len() == 1 => {
            return rest
                .first()
                .and_then(|name| request.signals.get(name))
                .map(|v| PathValue::Num(*v));
        }
        "actor" => &request.actor,
        "action" => &request.action,
        "context" => &request.context,
        _ => return None,
    };
    let (first, rest) = rest.split_first()?;
    let mut cur = root.get(first)?;
    for seg in rest {
        cur = cur.get(seg)?;
    }
    Some(PathValue::Json(cur))
}

/// A value read by [`read_path`].
#[derive(Debug)]
pub(crate) enum PathValue<'r> {
    Str(&'r str),
    Json(&'r Json),
    Num(f64),
}

impl PathValue<'_> {
    pub(crate) fn to_json(&self) -> Json {
        match self {
            PathValue::Str(s) => Json::String((*s).to_owned()),
            PathValue::Json(v) => (*v).clone(),
            PathValue::Num(n) => serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number),
        }
    }
}

/// The string form of a CEL value used in a bucket key.
pub(crate) fn key_string(v: &CelValue) -> Result<String, String> {
    match v {
        CelValue::String(s) => Ok(s.to_string()),
        CelValue::Int(i) => Ok(i.to_string()),
        CelValue::UInt(u) => Ok(u.to_string()),
        CelValue::Bool(b) => Ok(b.to_string()),
        CelValue::Null => Ok(String::new()),
        CelValue::Float(f) => Ok(f.to_string()),
        other => Err(format!("key expression gave {}", type_name(other))),
    }
}
