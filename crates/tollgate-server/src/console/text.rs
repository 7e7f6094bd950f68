//! [`Text`]: how anything that came from an agent (or any other client) reaches a
//! page. Its `Display` makes bidirectional-control characters visible as
//! `⟨U+202E⟩`; the template engine then HTML-escapes the result (every template is
//! auto-escaped and none uses `|safe`). Views hold agent-supplied strings only as
//! `Text`, so there is one path for them and it cannot be skipped.

use std::fmt::{self, Display, Write as _};

/// Agent-supplied text, shown literally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text(pub String);

impl Text {
    /// Wraps anything displayable.
    pub fn of(s: impl Into<String>) -> Self {
        Text(s.into())
    }

    /// Pretty JSON of a value, as text.
    pub fn json(v: &impl serde::Serialize) -> Self {
        Text(serde_json::to_string_pretty(v).unwrap_or_default())
    }

    /// Whether there is nothing to show.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `c` changes the direction of the text around it (the Unicode bidi
/// embedding, override and isolate controls, the directional marks, and the Arabic
/// letter mark): such characters can make text read differently from what it is.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

impl Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if is_bidi_control(c) {
                write!(f, "\u{27E8}U+{:04X}\u{27E9}", u32::from(c))?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_become_visible_markers() {
        let t = Text::of("a\u{202E}b\u{2066}c\u{200F}d\u{061C}e");
        assert_eq!(
            t.to_string(),
            "a\u{27E8}U+202E\u{27E9}b\u{27E8}U+2066\u{27E9}c\u{27E8}U+200F\u{27E9}d\u{27E8}U+061C\u{27E9}e"
        );
    }

    #[test]
    fn other_text_is_unchanged_here_and_escaped_by_the_template() {
        assert_eq!(Text::of("<script>é").to_string(), "<script>é");
    }
}
