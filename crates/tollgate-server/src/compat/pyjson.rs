//! Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"))`, byte for byte.
//!
//! The Decionis SDK verifies a decision's signature over exactly these bytes (after
//! parsing the response and dumping it again), so the server must produce them
//! without Python: ASCII-only output with lowercase `\uXXXX` escapes (surrogate pairs
//! outside the Basic Multilingual Plane, and DEL escaped too), keys sorted by code
//! point, and floats in Python's `repr` form (`1e-05`, `1.0`, `1e+16`).

use serde_json::{Number, Value};

/// The bytes Python's `json.dumps(value, sort_keys=True, separators=(",", ":"))`
/// produces for the object Python would parse from `value`'s JSON text.
pub fn dumps_sorted(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Python sorts `str` keys by code point; Rust orders `String`s by their
            // UTF-8 bytes, which is the same order.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_value(out, v);
                }
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &Number) {
    // JSON integers parse to Python `int` (printed in full); anything with a
    // fraction or exponent parses to `float` (printed with `repr`).
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&float_repr(f));
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation
/// when the decimal exponent is in [-4, 16), scientific otherwise.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits, like Python's repr:
    // `1.2345e2`, `1e-5`, `-0e0`.
    let sci = format!("{f:e}");
    let (negative, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Python's `decpt`: the value is 0.DIGITS × 10^decpt.
    let decpt = exp + 1;
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = decpt - 1;
        out.push('e');
        out.push(if e < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", e.unsigned_abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        for _ in 0..(-decpt) {
            out.push('0');
        }
        out.push_str(&digits);
    } else if decpt < len {
        let (int, frac) = digits.split_at(usize::try_from(decpt).unwrap_or(0));
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else {
        out.push_str(&digits);
        for _ in 0..(decpt - len) {
            out.push('0');
        }
        out.push_str(".0");
    }
    out
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Removes every `null` (object members and array items), recursively: the SDK's
/// `exclude_none` dump drops them, so a signed body must not contain any.
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(strip_nulls);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `repr(float)` vectors printed by CPython 3.11.
    const FLOATS: &[(f64, &str)] = &[
        (0.1, "0.1"),
        (1.0, "1.0"),
        (1e-05, "1e-05"),
        (1e-4, "0.0001"),
        (1e16, "1e+16"),
        (1e15, "1000000000000000.0"),
        (123456789012345678.0, "1.2345678901234568e+17"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (1.5e-7, "1.5e-07"),
        (2.5, "2.5"),
        (1e22, "1e+22"),
        (1e21, "1e+21"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (0.30000000000000004, "0.30000000000000004"),
        (100.0, "100.0"),
        (12345.678, "12345.678"),
        (1e100, "1e+100"),
        (-2.5e-10, "-2.5e-10"),
        (2.71, "2.71"),
    ];

    #[test]
    fn floats_print_like_python_repr() {
        for (f, want) in FLOATS {
            assert_eq!(float_repr(*f), *want, "{f:e}");
        }
    }

    #[test]
    fn floats_in_json_text_print_like_python() {
        // Numbers as serde_json emits them, parsed back: what the SDK sees.
        for (f, want) in FLOATS {
            let text = serde_json::to_string(&json!(f)).unwrap_or_default();
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            assert_eq!(dumps_sorted(&parsed), *want, "{text}");
        }
    }

    #[test]
    fn strings_and_nesting_match_python() {
        // json.dumps({"b": "é ☃ 𝄞 \x7f \x01 \n\t\"\\ /", "a": [1, 2.0, {"z": None,
        // "y": True}]}, sort_keys=True, separators=(",", ":")) in CPython 3.11.
        let v =
            json!({"b": "é ☃ 𝄞 \u{7f} \u{1} \n\t\"\\ /", "a": [1, 2.0, {"z": null, "y": true}]});
        assert_eq!(
            dumps_sorted(&v),
            r#"{"a":[1,2.0,{"y":true,"z":null}],"b":"\u00e9 \u2603 \ud834\udd1e \u007f \u0001 \n\t\"\\ /"}"#
        );
    }

    #[test]
    fn keys_sort_by_code_point() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "a_b": 4, "ab": 5, "\u{10000}": 6, "\u{ffff}": 7});
        // sorted(["é","z","Z","a_b","ab","\U00010000","\uffff"]) in CPython.
        assert_eq!(
            dumps_sorted(&v),
            r#"{"Z":3,"a_b":4,"ab":5,"z":2,"\u00e9":1,"\uffff":7,"\ud800\udc00":6}"#
        );
    }

    #[test]
    fn integers_stay_integers() {
        let v = json!({"n": -7, "u": u64::MAX, "f": 7.0});
        assert_eq!(
            dumps_sorted(&v),
            r#"{"f":7.0,"n":-7,"u":18446744073709551615}"#
        );
    }

    #[test]
    fn nulls_are_stripped_everywhere() {
        let mut v = json!({"a": null, "b": [1, null, {"c": null, "d": 2}]});
        strip_nulls(&mut v);
        assert_eq!(v, json!({"b": [1, {"d": 2}]}));
    }
}
