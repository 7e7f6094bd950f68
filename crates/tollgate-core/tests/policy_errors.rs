//! Bad policies get clear, path-precise errors: one test per kind of mistake, in each
//! of the three formats where the format matters.

use tollgate_core::{PolicyFormat, compile_policy};

/// Compiles `text` and returns the error's display form.
fn error(text: &str, format: PolicyFormat) -> String {
    match compile_policy(text, format) {
        Ok(p) => panic!("policy {} compiled but should not have", p.id()),
        Err(e) => e.to_string(),
    }
}

fn yaml(text: &str) -> String {
    error(text, PolicyFormat::Yaml)
}

const RULES: &str = r#"
  - {name: a, when: 'action.type == "A"', effect: block, reason_code: A}
  - {name: b, when: 'action.amount > 10', effect: review, reason_code: B}
"#;

#[test]
fn unknown_variable_names_the_rule_and_the_variable() {
    let text = format!(
        "id: p\nrules:{RULES}  - {{name: c, when: 'acton.type == \"X\"', effect: block, reason_code: C}}\n"
    );
    let e = yaml(&text);
    assert!(
        e.starts_with("rules[2].when: unknown variable 'acton'"),
        "got: {e}"
    );
}

#[test]
fn unknown_field_at_top_level_and_nested() {
    let e = yaml("id: p\ndefault_efect: block\n");
    assert!(e.contains("unknown field `default_efect`"), "got: {e}");
    let e = yaml(&format!(
        "id: p\nrules:{RULES}  - {{name: c, when: 'true', efect: block, reason_code: C}}\n"
    ));
    assert!(
        e.starts_with("rules[2].efect: unknown field `efect`"),
        "got: {e}"
    );
    let e =
        yaml("id: p\nthrottle:\n  - {key: [tenant], capacity: 4, refill_every: 5s, burst: 9}\n");
    assert!(
        e.starts_with("throttle[0].burst: unknown field `burst`"),
        "got: {e}"
    );
}

#[test]
fn bad_cel_syntax() {
    let e = yaml(
        "id: p\nrules:\n  - {name: a, when: 'action.amount >', effect: block, reason_code: A}\n",
    );
    assert!(e.starts_with("rules[0].when: invalid CEL"), "got: {e}");
    let e = yaml("id: p\nsurvival: {score: '(1.0 - signals.risk', threshold: 0.5}\n");
    assert!(e.starts_with("survival.score: invalid CEL"), "got: {e}");
}

#[test]
fn bad_duration() {
    let e =
        yaml("id: p\nthrottle:\n  - {key: [tenant], capacity: 4, refill_every: five seconds}\n");
    assert!(
        e.starts_with("throttle[0].refill_every: bad duration 'five seconds'"),
        "got: {e}"
    );
    let e = yaml("id: p\nthrottle:\n  - {key: [tenant], capacity: 4, refill_every: 10us}\n");
    assert!(
        e.starts_with("throttle[0].refill_every: bad duration '10us'"),
        "got: {e}"
    );
    let e = yaml(
        "id: p\nrules:\n  - {name: a, when: 'true', effect: review, reason_code: A, review: {expires_in: tomorrow}}\n",
    );
    assert!(
        e.starts_with("rules[0].review.expires_in: bad duration 'tomorrow'"),
        "got: {e}"
    );
}

#[test]
fn threshold_out_of_range() {
    let e = yaml("id: p\nreality:\n  - {signal: volatility, lt: 1.5}\n");
    assert!(
        e.starts_with("reality[0].lt: threshold out of range: 1.5 is not in [0, 1]"),
        "got: {e}"
    );
    let e = yaml("id: p\nsurvival: {score: '1.0', threshold: 2}\n");
    assert!(
        e.starts_with("survival.threshold: threshold out of range"),
        "got: {e}"
    );
    let e = yaml("id: p\nthrottle:\n  - {key: [tenant], capacity: 0, refill_every: 5s}\n");
    assert!(
        e.starts_with("throttle[0].capacity: threshold out of range"),
        "got: {e}"
    );
    let e = yaml("id: p\nadaptive: {cap: 0.9}\n");
    assert!(
        e.starts_with("adaptive.cap: threshold out of range"),
        "got: {e}"
    );
    // A declared wider range makes the same bound valid.
    assert!(
        compile_policy(
            "id: p\nsignals:\n  spread: {min: 0, max: 10}\nreality:\n  - {signal: spread, lt: 1.5}\n",
            PolicyFormat::Yaml
        )
        .is_ok()
    );
}

#[test]
fn wrong_type_is_reported_with_its_path() {
    let e = yaml("id: p\nthrottle:\n  - {key: [tenant], capacity: four, refill_every: 5s}\n");
    assert!(
        e.starts_with("throttle[0].capacity: invalid type"),
        "got: {e}"
    );
    let e = yaml("id: p\nrules:\n  - {name: a, when: 'true', effect: maybe, reason_code: A}\n");
    assert!(
        e.starts_with("rules[0].effect: unknown variant `maybe`"),
        "got: {e}"
    );
}

#[test]
fn unknown_signal_when_signals_are_declared() {
    let e = yaml(
        "id: p\nsignals:\n  risk: {}\nrules:\n  - {name: a, when: 'signals.rsk > 0.5', effect: block, reason_code: A}\n",
    );
    assert!(
        e.starts_with("rules[0].when: unknown signal 'rsk'"),
        "got: {e}"
    );
}

#[test]
fn duplicate_names_bad_codes_and_every_issue_reported() {
    let e = yaml(
        "id: 'bad id'\nrules:\n  - {name: a, when: 'true', effect: block, reason_code: lower}\n  - {name: a, when: 'true', effect: block, reason_code: A}\n",
    );
    assert!(e.contains("id: invalid policy id 'bad id'"), "got: {e}");
    assert!(
        e.contains("rules[0].reason_code: invalid reason code 'lower'"),
        "got: {e}"
    );
    assert!(
        e.contains("rules[1].name: duplicate rule name 'a'"),
        "got: {e}"
    );
}

#[test]
fn toml_and_json_errors_are_path_precise_too() {
    let toml = "id = \"p\"\n[[rules]]\nname = \"a\"\nwhen = 'acton.type == \"X\"'\neffect = \"block\"\nreason_code = \"A\"\n";
    let e = error(toml, PolicyFormat::Toml);
    assert!(
        e.starts_with("rules[0].when: unknown variable 'acton'"),
        "got: {e}"
    );
    let json = r#"{"id": "p", "throttle": [{"key": ["tenant"], "capacity": 4, "refill_every": "5 parsecs"}]}"#;
    let e = error(json, PolicyFormat::Json);
    assert!(
        e.starts_with("throttle[0].refill_every: bad duration"),
        "got: {e}"
    );
    let e = error("{\"id\": ", PolicyFormat::Json);
    assert!(e.starts_with("invalid JSON"), "got: {e}");
    let e = error("id = ", PolicyFormat::Toml);
    assert!(e.starts_with("invalid TOML"), "got: {e}");
}

#[test]
fn the_same_policy_compiles_from_all_three_formats() {
    let yaml = "id: p\nrules:\n  - {name: a, when: 'action.amount > 10', effect: block, reason_code: A}\nthrottle:\n  - {key: [actor.id], capacity: 2, refill_every: 1s}\n";
    let toml = "id = \"p\"\n[[rules]]\nname = \"a\"\nwhen = 'action.amount > 10'\neffect = \"block\"\nreason_code = \"A\"\n[[throttle]]\nkey = [\"actor.id\"]\ncapacity = 2\nrefill_every = \"1s\"\n";
    let json = r#"{"id":"p","rules":[{"name":"a","when":"action.amount > 10","effect":"block","reason_code":"A"}],"throttle":[{"key":["actor.id"],"capacity":2,"refill_every":"1s"}]}"#;
    let docs: Vec<_> = [
        (yaml, PolicyFormat::Yaml),
        (toml, PolicyFormat::Toml),
        (json, PolicyFormat::Json),
    ]
    .into_iter()
    .map(|(t, f)| {
        assert_eq!(PolicyFormat::detect(t), f);
        compile_policy(t, f).unwrap().document().clone()
    })
    .collect();
    assert_eq!(docs[0], docs[1]);
    assert_eq!(docs[0], docs[2]);
}

#[test]
fn bad_history_calls_are_reported_where_they_are() {
    let rule = |when: &str| {
        format!("id: p\nrules:\n  - {{name: a, when: '{when}', effect: block, reason_code: A}}\n")
    };
    let e = yaml(&rule(
        r#"history.sum("desk", "action.amount", duration("24h")) > 1.0"#,
    ));
    assert!(
        e.starts_with("rules[0].when: the scope must be"),
        "got: {e}"
    );
    let e = yaml(&rule(
        r#"history.sum("actor", "amount", duration("24h")) > 1.0"#,
    ));
    assert!(
        e.starts_with("rules[0].when: cannot sum 'amount'"),
        "got: {e}"
    );
    let e = yaml(&rule(r#"history.count("actor", duration("one day")) > 1"#));
    assert!(
        e.starts_with("rules[0].when: bad duration 'one day'"),
        "got: {e}"
    );
    let e = yaml(&rule(r#"history.count("actor", action.window) > 1"#));
    assert!(
        e.starts_with("rules[0].when: the window must be"),
        "got: {e}"
    );
    let e = yaml(&rule(r#"history.max("actor", duration("1h")) > 1"#));
    assert!(
        e.starts_with("rules[0].when: unknown history function 'max'"),
        "got: {e}"
    );
    // Well-formed calls compile, in rules and in the survival score.
    let ok = "id: p\nrules:\n  - {name: a, when: 'history.sum(\"tenant\", \"action.amount\", duration(\"1h\")) > 10.0', effect: block, reason_code: A}\nsurvival: {score: '1.0 - double(history.count(\"actor\", 3600000)) / 100.0', threshold: 0.5}\n";
    assert!(
        compile_policy(ok, PolicyFormat::Yaml).is_ok(),
        "{:?}",
        compile_policy(ok, PolicyFormat::Yaml).err()
    );
}
