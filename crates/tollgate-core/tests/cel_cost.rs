//! The CEL evaluation cost limit: expressions whose evaluation work could grow faster
//! than linearly with the request are refused when the policy is compiled, with a clear
//! error; ordinary comprehensions still compile and evaluate.

use tollgate_core::{
    DecideInput, DecisionRequest, MemoryBuckets, PolicyBinding, PolicyFormat, Status, UnixMillis,
    compile_policy, decide,
};

fn policy(when: &str) -> String {
    let when = serde_json::to_string(when).unwrap_or_default();
    format!(
        "{{\"id\": \"p\", \"default_effect\": \"allow\", \"rules\": [{{\"name\": \"r\", \"when\": {when}, \"effect\": \"block\", \"reason_code\": \"R\"}}]}}"
    )
}

fn refused(when: &str) -> String {
    match compile_policy(&policy(when), PolicyFormat::Json) {
        Ok(_) => panic!("`{when}` compiled but should have been refused"),
        Err(e) => e.to_string(),
    }
}

fn decide_with(when: &str, list: Vec<serde_json::Value>) -> Status {
    let compiled = match compile_policy(&policy(when), PolicyFormat::Json) {
        Ok(p) => p,
        Err(e) => panic!("`{when}` should compile: {e}"),
    };
    let mut request = DecisionRequest {
        tenant: "t".into(),
        ..Default::default()
    };
    request.action.insert("type".into(), "PAY".into());
    request.context.insert("items".into(), list.into());
    let policies = [PolicyBinding::Found(compiled.into())];
    let input = DecideInput {
        request: &request,
        policies: &policies,
        now: UnixMillis(1_700_000_000_000),
        overrides: &[],
        outcomes: &[],
        approval: None,
        tenant_shadow: false,
    };
    match decide(&input, &mut MemoryBuckets::new()) {
        Ok(v) => v.status,
        Err(e) => panic!("valid request refused: {e:?}"),
    }
}

#[test]
fn nested_comprehension_is_refused() {
    let e = refused("context.items.all(x, context.items.exists(y, x == y))");
    assert!(
        e.starts_with("rules[0].when: a comprehension") && e.contains("evaluation cost limit"),
        "got: {e}"
    );
}

#[test]
fn comprehension_over_a_comprehension_result_is_refused() {
    let e = refused("context.items.map(x, context.items).map(y, y + y).size() > 0");
    assert!(
        e.contains("another comprehension's result") && e.contains("evaluation cost limit"),
        "got: {e}"
    );
}

#[test]
fn too_many_comprehensions_are_refused() {
    let one = "context.items.exists(x, x == 1)";
    let e = refused(&[one; 9].join(" || "));
    assert!(
        e.contains("9 comprehensions") && e.contains("at most 8"),
        "got: {e}"
    );
}

#[test]
fn ordinary_comprehensions_compile_and_evaluate() {
    let one = "context.items.exists(x, x == 3)";
    let eight = [one; 8].join(" || ");
    assert_eq!(decide_with(&eight, vec![1.into(), 3.into()]), Status::Block);
    assert_eq!(decide_with(&eight, vec![1.into(), 2.into()]), Status::Allow);
    let chained = "context.items.filter(x, x > 1).size() == 2 && context.items.all(x, x < 10)";
    assert_eq!(
        decide_with(chained, vec![1.into(), 2.into(), 3.into()]),
        Status::Block
    );
}

#[test]
fn deep_and_long_expressions_are_refused() {
    let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    let e = refused(&deep);
    assert!(e.starts_with("rules[0].when:"), "got: {e}");
    let long = ["action.amount > 1"; 400].join(" || ");
    let e = refused(&long);
    assert!(e.contains("at most 4096 are allowed"), "got: {e}");
}
/// Builds an expression nested `d` levels deep.
type Shape = fn(usize) -> String;

/// Found while writing the fuzz targets: about a dozen nested brackets in a condition
/// overflowed the stack in the `cel` crate's parser and aborted the process; the
/// policy validation endpoint compiles caller-supplied text, so any `decide` key
/// could crash the server. Nesting is now limited on the text, before parsing, and the
/// limit itself must be safe: the deepest accepted expression of each kind compiles
/// on this (2 MiB) test thread.
#[test]
fn deeply_nested_brackets_do_not_overflow_the_stack() {
    let kinds: [(&str, Shape); 5] = [
        ("parens", |d| {
            format!("{}true{}", "(".repeat(d), ")".repeat(d))
        }),
        ("lists", |d| {
            format!("{}1{} == 1", "[".repeat(d), "]".repeat(d))
        }),
        ("maps", |d| {
            format!("{}1{}.size() > 0", "{1: ".repeat(d), "}".repeat(d))
        }),
        ("calls", |d| {
            format!("{}1{} == 1", "size(".repeat(d), ")".repeat(d))
        }),
        ("conditionals", |d| {
            format!("{}true", "true ? true : ".repeat(d))
        }),
    ];
    for (kind, make) in kinds {
        if let Err(e) = compile_policy(&policy(&make(24)), PolicyFormat::Json) {
            // Some shapes may fail for other reasons; none may fail for nesting at
            // the limit.
            assert!(!e.to_string().contains("nests deeper"), "{kind} at 24: {e}");
        }
        let e = refused(&make(25));
        assert!(
            e.contains("nests deeper than 24 levels of brackets and conditionals"),
            "{kind} at 25: {e}"
        );
        let e = refused(&make(1000));
        assert!(e.starts_with("rules[0].when:"), "{kind} at 1000: {e}");
    }
}

#[test]
fn brackets_inside_string_literals_do_not_count() {
    let brackets = "(".repeat(40);
    for quoted in [
        format!("'{brackets}'"),
        format!("\"{brackets}\""),
        format!("r'\\{brackets}'"),
        format!("'''{brackets}'''"),
        format!("b\"{brackets}\""),
    ] {
        let when = format!("action.type == {quoted}");
        if let Err(e) = compile_policy(&policy(&when), PolicyFormat::Json) {
            panic!("`{when}` should compile: {e}");
        }
    }
    let e = refused("action.type == 'abc");
    assert!(e.contains("unterminated string literal"), "got: {e}");
    // A raw string ends at its first quote even after a backslash: the brackets after
    // it are counted.
    let e = refused(&format!("r'\\' + {brackets}'x'{}", ")".repeat(40)));
    assert!(e.contains("nests deeper"), "got: {e}");
}
