//! A native evaluator for the common subset of CEL that policies use (paths,
//! literals, comparisons, `&&`, `||`, `!`, `in` a list, `startsWith`/`endsWith`/
//! `contains`, `has`, the conditional, and arithmetic).
//!
//! It is an accelerator, not a second CEL: it answers only when it is certain of
//! CEL's result (well-typed operands, no error anywhere it evaluated), and otherwise
//! returns [`Fast::Unsure`] so the caller evaluates the expression with the `cel`
//! crate, which also produces the error message for the trace. A differential
//! property test (`tests/fast_vs_cel.rs`) checks that every answer it gives equals
//! the `cel` crate's.

use std::cmp::Ordering;

use cel::IdedExpr;
use cel::common::ast::{Expr, LiteralValue, operators};
use serde_json::{Map, Value as Json};

use crate::request::DecisionRequest;
use crate::time::UnixMillis;

/// A compiled native expression.
#[derive(Debug)]
pub(crate) enum Node {
    Lit(Lit),
    /// A variable (index into `VARIABLES`) and the fields selected from it.
    Path(u8, Vec<String>),
    Has(u8, Vec<String>, String),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
    Neg(Box<Node>),
    In(Box<Node>, Box<Node>),
    List(Vec<Node>),
    StrFn(StrFn, Box<Node>, Box<Node>),
    Size(Box<Node>),
    History(crate::history::HistoryCall),
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// A value during native evaluation, borrowed from the request or the policy.
#[derive(Debug, Clone, Copy)]
pub(crate) enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
    List(&'a [Json]),
    /// A list literal of the expression.
    LitList(&'a [Node]),
    Map(&'a Map<String, Json>),
}

/// The result of native evaluation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fast<'a> {
    /// CEL's result, with certainty.
    Sure(V<'a>),
    /// Not certain: evaluate with the `cel` crate.
    Unsure,
}

use Fast::{Sure, Unsure};

const VARS: [&str; 8] = crate::vars::VARIABLES;

/// Translates a CEL AST into a native expression, or `None` if any part of it is
/// outside the subset.
pub(crate) fn compile(e: &IdedExpr) -> Option<Node> {
    match &e.expr {
        Expr::Literal(l) => Some(Node::Lit(match l {
            LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
            LiteralValue::Int(i) => Lit::Int(*i.inner()),
            LiteralValue::UInt(u) => Lit::UInt(*u.inner()),
            LiteralValue::Double(d) => Lit::Double(*d.inner()),
            LiteralValue::String(s) => Lit::Str(s.inner().to_owned()),
            LiteralValue::Null => Lit::Null,
            LiteralValue::Bytes(_) => return None,
        })),
        Expr::Ident(_) | Expr::Select(_) => {
            if let Expr::Select(s) = &e.expr
                && s.test
            {
                let (root, fields) = path(&s.operand)?;
                return Some(Node::Has(root, fields, s.field.clone()));
            }
            let (root, fields) = path(e)?;
            Some(Node::Path(root, fields))
        }
        Expr::List(list) => {
            if !list.optional_indices.is_empty() {
                return None;
            }
            Some(Node::List(
                list.elements.iter().map(compile).collect::<Option<_>>()?,
            ))
        }
        Expr::Call(call) => {
            if let Some(h) = crate::history::parse_call(e) {
                return h.ok().map(Node::History);
            }
            let arg = |i: usize| call.args.get(i).and_then(compile).map(Box::new);
            match (
                call.func_name.as_str(),
                call.target.as_ref(),
                call.args.len(),
            ) {
                (operators::LOGICAL_AND, None, 2) => Some(Node::And(arg(0)?, arg(1)?)),
                (operators::LOGICAL_OR, None, 2) => Some(Node::Or(arg(0)?, arg(1)?)),
                (operators::LOGICAL_NOT, None, 1) => Some(Node::Not(arg(0)?)),
                (operators::CONDITIONAL, None, 3) => Some(Node::Cond(arg(0)?, arg(1)?, arg(2)?)),
                (operators::NEGATE, None, 1) => Some(Node::Neg(arg(0)?)),
                (operators::IN, None, 2) => Some(Node::In(arg(0)?, arg(1)?)),
                ("size", None, 1) => Some(Node::Size(arg(0)?)),
                ("size", Some(target), 0) => Some(Node::Size(Box::new(compile(target)?))),
                (op, None, 2) => {
                    let cmp = match op {
                        operators::EQUALS => Some(CmpOp::Eq),
                        operators::NOT_EQUALS => Some(CmpOp::Ne),
                        operators::LESS => Some(CmpOp::Lt),
                        operators::LESS_EQUALS => Some(CmpOp::Le),
                        operators::GREATER => Some(CmpOp::Gt),
                        operators::GREATER_EQUALS => Some(CmpOp::Ge),
                        _ => None,
                    };
                    if let Some(cmp) = cmp {
                        return Some(Node::Cmp(cmp, arg(0)?, arg(1)?));
                    }
                    let arith = match op {
                        operators::ADD => ArithOp::Add,
                        operators::SUBSTRACT => ArithOp::Sub,
                        operators::MULTIPLY => ArithOp::Mul,
                        operators::DIVIDE => ArithOp::Div,
                        _ => return None,
                    };
                    Some(Node::Arith(arith, arg(0)?, arg(1)?))
                }
                (name, Some(target), 1) => {
                    let f = match name {
                        "startsWith" => StrFn::StartsWith,
                        "endsWith" => StrFn::EndsWith,
                        "contains" => StrFn::Contains,
                        _ => return None,
                    };
                    Some(Node::StrFn(f, Box::new(compile(target)?), arg(0)?))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn path(e: &IdedExpr) -> Option<(u8, Vec<String>)> {
    match &e.expr {
        Expr::Ident(name) => {
            let idx = VARS.iter().position(|v| v == name)?;
            Some((u8::try_from(idx).ok()?, Vec::new()))
        }
        Expr::Select(s) if !s.test => {
            let (root, mut fields) = path(&s.operand)?;
            fields.push(s.field.clone());
            Some((root, fields))
        }
        _ => None,
    }
}

/// What native evaluation reads: the request, the effective signals and the time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) request: &'a DecisionRequest,
    pub(crate) signals: &'a [(&'a str, f64)],
    pub(crate) now: UnixMillis,
    /// The decision's precomputed history aggregates.
    pub(crate) history: &'a [(crate::history::HistoryCall, f64)],
}

fn json<'a>(v: &'a Json) -> V<'a> {
    match v {
        Json::Null => V::Null,
        Json::Bool(b) => V::Bool(*b),
        // Every JSON number is a double, as in CEL's JSON mapping.
        Json::Number(n) => V::Double(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => V::Str(s),
        Json::Array(a) => V::List(a),
        Json::Object(m) => V::Map(m),
    }
}

fn select<'a>(base: V<'a>, field: &str) -> Fast<'a> {
    match base {
        V::Map(m) => m.get(field).map_or(Unsure, |v| Sure(json(v))),
        _ => Unsure,
    }
}

fn root<'a>(env: &Env<'a>, var: u8, first: Option<&str>) -> Fast<'a> {
    let r = env.request;
    match var {
        0 => Sure(V::Map(&r.actor)),
        1 => Sure(V::Map(&r.action)),
        2 => Sure(V::Map(&r.context)),
        3 => match first {
            // `signals.NAME` is read straight from the effective signals.
            Some(name) => env
                .signals
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(Unsure, |(_, v)| Sure(V::Double(*v))),
            None => Unsure,
        },
        4 => Sure(r.source.as_deref().map_or(V::Null, V::Str)),
        5 => Sure(r.intent.as_deref().map_or(V::Null, V::Str)),
        6 => Sure(V::Str(&r.tenant)),
        7 => Sure(V::Int(env.now.as_millis())),
        _ => Unsure,
    }
}

fn truth(f: Fast<'_>) -> Option<bool> {
    match f {
        Sure(V::Bool(b)) => Some(b),
        _ => None,
    }
}

/// Evaluates `node`; `Sure` only where CEL's result is certain.
pub(crate) fn eval<'a>(node: &'a Node, env: &Env<'a>) -> Fast<'a> {
    match node {
        Node::Lit(l) => Sure(match l {
            Lit::Null => V::Null,
            Lit::Bool(b) => V::Bool(*b),
            Lit::Int(i) => V::Int(*i),
            Lit::UInt(u) => V::UInt(*u),
            Lit::Double(d) => V::Double(*d),
            Lit::Str(s) => V::Str(s),
        }),
        Node::Path(var, fields) => {
            let (mut cur, rest) = if *var == 3 {
                match fields.split_first() {
                    Some((first, rest)) => (root(env, 3, Some(first)), rest),
                    None => return Unsure,
                }
            } else {
                (root(env, *var, None), fields.as_slice())
            };
            for f in rest {
                cur = match cur {
                    Sure(v) => select(v, f),
                    Unsure => return Unsure,
                };
            }
            cur
        }
        Node::Has(var, fields, field) => {
            if *var == 3 {
                return Unsure;
            }
            let mut cur = root(env, *var, None);
            for f in fields {
                cur = match cur {
                    Sure(v) => select(v, f),
                    Unsure => return Unsure,
                };
            }
            match cur {
                Sure(V::Map(m)) => Sure(V::Bool(m.contains_key(field))),
                _ => Unsure,
            }
        }
        Node::Not(a) => truth(eval(a, env)).map_or(Unsure, |b| Sure(V::Bool(!b))),
        Node::And(a, b) => match truth(eval(a, env)) {
            Some(false) => Sure(V::Bool(false)),
            Some(true) => truth(eval(b, env)).map_or(Unsure, |b| Sure(V::Bool(b))),
            None => Unsure,
        },
        Node::Or(a, b) => match truth(eval(a, env)) {
            Some(true) => Sure(V::Bool(true)),
            Some(false) => truth(eval(b, env)).map_or(Unsure, |b| Sure(V::Bool(b))),
            None => Unsure,
        },
        Node::Cond(c, a, b) => match truth(eval(c, env)) {
            Some(true) => eval(a, env),
            Some(false) => eval(b, env),
            None => Unsure,
        },
        Node::Cmp(op, a, b) => {
            let (Sure(x), Sure(y)) = (eval(a, env), eval(b, env)) else {
                return Unsure;
            };
            match op {
                CmpOp::Eq => equal(x, y).map_or(Unsure, |e| Sure(V::Bool(e))),
                CmpOp::Ne => equal(x, y).map_or(Unsure, |e| Sure(V::Bool(!e))),
                _ => match order(x, y) {
                    Some(o) => Sure(V::Bool(match op {
                        CmpOp::Lt => o == Ordering::Less,
                        CmpOp::Le => o != Ordering::Greater,
                        CmpOp::Gt => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    })),
                    None => Unsure,
                },
            }
        }
        Node::Arith(op, a, b) => {
            let (Sure(x), Sure(y)) = (eval(a, env), eval(b, env)) else {
                return Unsure;
            };
            arith(*op, x, y)
        }
        Node::Neg(a) => match eval(a, env) {
            Sure(V::Double(d)) => Sure(V::Double(-d)),
            Sure(V::Int(i)) => i.checked_neg().map_or(Unsure, |n| Sure(V::Int(n))),
            _ => Unsure,
        },
        Node::List(items) => Sure(V::LitList(items)),
        Node::In(a, b) => {
            let (Sure(x), Sure(list)) = (eval(a, env), eval(b, env)) else {
                return Unsure;
            };
            let mut found = false;
            match list {
                V::List(items) => {
                    for item in items {
                        match equal(x, json(item)) {
                            Some(true) => found = true,
                            Some(false) => {}
                            None => return Unsure,
                        }
                    }
                }
                V::LitList(items) => {
                    for item in items {
                        let Sure(y) = eval(item, env) else {
                            return Unsure;
                        };
                        match equal(x, y) {
                            Some(true) => found = true,
                            Some(false) => {}
                            None => return Unsure,
                        }
                    }
                }
                _ => return Unsure,
            }
            Sure(V::Bool(found))
        }
        Node::History(call) => match env.history.iter().find(|(c, _)| c == call) {
            Some((c, v)) if c.field.is_none() => Sure(V::Int(*v as i64)),
            Some((_, v)) => Sure(V::Double(*v)),
            None => Unsure,
        },
        Node::Size(a) => match eval(a, env) {
            // CEL counts code points, as the `cel` crate does.
            Sure(V::Str(s)) => i64::try_from(s.chars().count()).map_or(Unsure, |n| Sure(V::Int(n))),
            Sure(V::List(l)) => i64::try_from(l.len()).map_or(Unsure, |n| Sure(V::Int(n))),
            Sure(V::LitList(l)) => i64::try_from(l.len()).map_or(Unsure, |n| Sure(V::Int(n))),
            Sure(V::Map(m)) => i64::try_from(m.len()).map_or(Unsure, |n| Sure(V::Int(n))),
            _ => Unsure,
        },
        Node::StrFn(f, target, arg) => {
            let (Sure(V::Str(s)), Sure(V::Str(p))) = (eval(target, env), eval(arg, env)) else {
                return Unsure;
            };
            Sure(V::Bool(match f {
                StrFn::StartsWith => s.starts_with(p),
                StrFn::EndsWith => s.ends_with(p),
                StrFn::Contains => s.contains(p),
            }))
        }
    }
}

/// CEL equality where certain: same kinds, and numbers across kinds.
fn equal(x: V<'_>, y: V<'_>) -> Option<bool> {
    Some(match (x, y) {
        (V::Null, V::Null) => true,
        (V::Bool(a), V::Bool(b)) => a == b,
        (V::Str(a), V::Str(b)) => a == b,
        (V::Int(a), V::Int(b)) => a == b,
        (V::UInt(a), V::UInt(b)) => a == b,
        (V::Double(a), V::Double(b)) => a == b,
        (V::Int(a), V::Double(b)) | (V::Double(b), V::Int(a)) => (a as f64) == b,
        _ => return None,
    })
}

/// CEL ordering where certain: numbers (int, uint, double within their kinds and int
/// against double) and strings.
fn order(x: V<'_>, y: V<'_>) -> Option<Ordering> {
    match (x, y) {
        (V::Int(a), V::Int(b)) => Some(a.cmp(&b)),
        (V::UInt(a), V::UInt(b)) => Some(a.cmp(&b)),
        (V::Double(a), V::Double(b)) => a.partial_cmp(&b),
        (V::Int(a), V::Double(b)) => (a as f64).partial_cmp(&b),
        (V::Double(a), V::Int(b)) => a.partial_cmp(&(b as f64)),
        (V::Str(a), V::Str(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn arith<'a>(op: ArithOp, x: V<'a>, y: V<'a>) -> Fast<'a> {
    match (x, y) {
        (V::Double(a), V::Double(b)) => Sure(V::Double(match op {
            ArithOp::Add => a + b,
            ArithOp::Sub => a - b,
            ArithOp::Mul => a * b,
            ArithOp::Div => a / b,
        })),
        (V::Int(a), V::Int(b)) => {
            let r = match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                ArithOp::Div => a.checked_div(b),
            };
            r.map_or(Unsure, |r| Sure(V::Int(r)))
        }
        _ => Unsure,
    }
}

#[cfg(test)]
mod tests {
    //! Differential test: wherever the native evaluator answers, its answer equals
    //! the `cel` crate's on the same expression and request.

    use cel::Value as CelValue;
    use proptest::prelude::*;
    use serde_json::json;

    use super::{Fast, V, eval};
    use crate::expr::{Activation, compile};
    use crate::request::DecisionRequest;
    use crate::time::UnixMillis;
    use crate::vars::VarSet;

    fn leaf() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "action.type",
            "action.amount",
            "action.price",
            "action.tags",
            "action.flag",
            "action.missing",
            "actor.id",
            "actor.tier",
            "context.hour",
            "context.region",
            "context.nested.depth",
            "signals.risk",
            "signals.confidence",
            "signals.absent",
            "source",
            "intent",
            "tenant",
            "now",
            "1",
            "-3",
            "0",
            "2.5",
            "0.0",
            "-1.5",
            "7u",
            "\"TRANSFER\"",
            "\"TR\"",
            "\"eu\"",
            "\"\"",
            "true",
            "false",
            "null",
            "[\"a\", \"b\", \"ops\"]",
            "[1, 2.0, 3]",
            "action.type.startsWith(\"TR\")",
            "action.type.endsWith(\"ER\")",
            "context.region.contains(\"u\")",
            "\"ops\" in action.tags",
            "action.type in [\"TRADE\", \"TR\"]",
            "action.amount > 100",
            "(1.0 - signals.risk) * signals.confidence",
            "action.amount / 2",
        ])
        .prop_map(str::to_owned)
    }

    fn expr() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                (
                    inner.clone(),
                    prop::sample::select(vec![
                        "==", "!=", "<", "<=", ">", ">=", "&&", "||", "+", "-", "*", "/", "in"
                    ]),
                    inner.clone()
                )
                    .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
                inner.clone().prop_map(|a| format!("!({a})")),
                inner.clone().prop_map(|a| format!("-({a})")),
                (inner.clone(), inner.clone(), inner.clone())
                    .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
                (
                    inner.clone(),
                    prop::sample::select(vec!["startsWith", "endsWith", "contains"]),
                    inner.clone()
                )
                    .prop_map(|(a, f, b)| format!("({a}).{f}({b})")),
                prop::sample::select(vec![
                    "has(action.amount)",
                    "has(action.nope)",
                    "has(context.nested.depth)"
                ])
                .prop_map(str::to_owned),
            ]
        })
    }

    fn request_strategy() -> impl Strategy<Value = DecisionRequest> {
        (
            prop::sample::select(vec![json!("TRANSFER"), json!("TRADE"), json!("TR")]),
            prop::sample::select(vec![json!(5), json!(25000), json!(-2), json!(2.5), json!("12"), json!(null), json!(u64::MAX)]),
            prop::sample::select(vec![json!(0.5), json!(3), json!(1e300)]),
            prop::sample::select(vec![json!(["ops", "eu"]), json!([]), json!([1, "a", null])]),
            prop::option::of(prop::sample::select(vec!["s1", "TR"])),
            0.0f64..=1.0,
            any::<bool>(),
        )
            .prop_map(|(t, amount, price, tags, source, risk, flag)| {
                let mut r = DecisionRequest {
                    tenant: "acme".into(),
                    actor: json!({"id": "bot-1", "tier": 2}).as_object().cloned().unwrap_or_default(),
                    action: json!({"type": t, "amount": amount, "price": price, "tags": tags, "flag": flag})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    context: json!({"hour": 22, "region": "eu", "nested": {"depth": 1.5}})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                    source: source.map(str::to_owned),
                    intent: Some("reply".into()),
                    ..Default::default()
                };
                r.signals.insert("risk".into(), risk);
                r.signals.insert("confidence".into(), 0.9);
                r
            })
    }

    fn same(v: V<'_>, c: &CelValue) -> bool {
        match (v, c) {
            (V::Null, CelValue::Null) => true,
            (V::Bool(a), CelValue::Bool(b)) => a == *b,
            (V::Int(a), CelValue::Int(b)) => a == *b,
            (V::UInt(a), CelValue::UInt(b)) => a == *b,
            (V::Double(a), CelValue::Float(b)) => a == *b || (a.is_nan() && b.is_nan()),
            (V::Str(a), CelValue::String(b)) => a == b.as_str(),
            // Lists and maps are compared through what uses them (`in`, selection).
            (V::List(_) | V::LitList(_), CelValue::List(_)) => true,
            (V::Map(_), CelValue::Map(_)) => true,
            _ => false,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn native_answers_equal_cel(src in expr(), request in request_strategy()) {
            let Ok(compiled) = compile(&src) else { return Ok(()); };
            let Some(node) = &compiled.fast else { return Ok(()); };
            let signals: Vec<(&str, f64)> = request.signals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let now = UnixMillis(1_767_225_600_000);
            let env = super::Env { request: &request, signals: &signals, now, history: &[] };
            let mut all = VarSet::default();
            for i in 0..8 { all.insert(i); }
            let act = Activation::new(&request, &signals, now, all, &[]);
            let cel = act.eval(&compiled);
            if let Fast::Sure(v) = eval(node, &env) {
                match &cel {
                    Ok(c) => prop_assert!(same(v, c), "{src}: native {v:?} but cel {c:?}"),
                    Err(e) => prop_assert!(false, "{src}: native {v:?} but cel error {e}"),
                }
            }
        }
    }

    #[test]
    fn the_common_shapes_are_native() {
        for src in [
            "(1.0 - signals.risk_score) * signals.confidence",
            "action.type == \"TRANSFER_FUNDS\" && action.amount > 10000",
            "action.type.startsWith(\"db_\")",
            "action.counterparty in [\"A\", \"B\"]",
            "has(action.new_beneficiary) && action.new_beneficiary",
            "context.hour >= 22 || !(actor.id == \"vip\")",
        ] {
            let c = compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert!(c.fast.is_some(), "{src} should be inside the native subset");
        }
        let c = compile("action.memo.matches(\"^a+$\")").unwrap();
        assert!(c.fast.is_none(), "matches() is left to cel");
    }
}
