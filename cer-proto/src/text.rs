//! Text that came from outside — peers' incidents, certificate User IDs,
//! file names, process output — on its way to a terminal or a log, and the
//! characters incident text may not carry at all.
//!
//! [`escape`] is the one place that decides what a terminal must not
//! receive raw: C0 and C1 control characters (ESC starts OSC 52 clipboard
//! writes and screen clears; U+009B is a one-byte CSI on some terminals)
//! and Unicode bidi controls, which reorder what an operator sees without
//! changing what the text is. cerd and cerctl both print through it.
//!
//! [`check_no_bidi`] is the validation rule for incident free text.
//!
//! Pure functions on strings: no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::error::FieldError;

/// Whether `c` is a Unicode bidi control: the explicit embeddings,
/// overrides and isolates (U+202A–U+202E, U+2066–U+2069) and the implicit
/// marks (U+200E LRM, U+200F RLM, U+061C ALM).
pub fn is_bidi_control(c: char) -> bool {
    is_bidi_override(c) || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Whether `c` is an explicit bidi embedding, override or isolate
/// (U+202A–U+202E, U+2066–U+2069): the characters that can make text
/// display in an order other than the one it is stored in ("Trojan
/// Source", CVE-2021-42574). The implicit marks are not included: they
/// only settle the direction of neutral characters next to them, and
/// Arabic, Hebrew and Persian text uses them legitimately.
pub fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `c` must not reach a terminal raw: a control character (C0,
/// DEL, C1) or a bidi control.
pub fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control() || is_bidi_control(c)
}

/// `text` with every character a terminal must not receive raw written
/// as a visible escape: `\n`, `\t`, `\r`, `\u{1b}`, `\u{202e}`. Everything
/// else, other scripts included, is kept as it is. Borrows when there is
/// nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if is_unsafe_for_terminal(c) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Refuses text carrying an explicit bidi embedding, override or isolate
/// (see [`is_bidi_override`]), naming the field and the character.
/// Applies to incident titles, descriptions, notes, reasons and comments:
/// text another CERT's analysts read and act on.
pub fn check_no_bidi(field: impl Into<Cow<'static, str>>, text: &str) -> Result<(), FieldError> {
    match text.chars().find(|c| is_bidi_override(*c)) {
        None => Ok(()),
        Some(c) => Err(FieldError::new(
            field,
            format!(
                "must not contain bidi control characters (found U+{:04X}); they make text display in a different order than it is stored",
                u32::from(c)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["KE-CIRT", "Rechnung März.doc", "فريق الاستجابة", ""] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn terminal_controls_are_escaped_visibly() {
        // OSC 52 (clipboard write), a screen clear, a one-byte CSI and DEL.
        let hostile = "Evil CERT\u{1b}]52;c;Y3VybCBldmls\u{7}\u{1b}[2J\u{9b}31m\u{7f}";
        assert_eq!(
            escape(hostile),
            "Evil CERT\\u{1b}]52;c;Y3VybCBldmls\\u{7}\\u{1b}[2J\\u{9b}31m\\u{7f}"
        );
        assert_eq!(escape("a\nb\tc\rd\0"), "a\\nb\\tc\\rd\\u{0}");
    }

    #[test]
    fn every_bidi_control_is_escaped() {
        let all = [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
            '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ];
        for c in all {
            assert!(is_bidi_control(c), "{c:?}");
            let text = format!("a{c}b");
            assert_eq!(escape(&text), format!("a\\u{{{:x}}}b", u32::from(c)));
        }
        assert_eq!(escape("invoice\u{202E}fdp.exe"), "invoice\\u{202e}fdp.exe");
    }

    #[test]
    fn free_text_may_not_carry_bidi_overrides() {
        assert_eq!(check_no_bidi("title", "Phishing wave"), Ok(()));
        // Marks are part of ordinary right-to-left writing.
        assert_eq!(check_no_bidi("title", "هجوم\u{200F} 2024"), Ok(()));
        let err = check_no_bidi("note", "see invoice\u{202E}fdp.exe").unwrap_err();
        assert_eq!(err.field, "note");
        assert!(err.reason.contains("U+202E"), "{}", err.reason);
        assert!(
            err.reason.starts_with("must not contain bidi control"),
            "{}",
            err.reason
        );
        for c in ['\u{202A}', '\u{202D}', '\u{2066}', '\u{2069}'] {
            assert!(check_no_bidi("title", &format!("a{c}b")).is_err(), "{c:?}");
        }
    }

    proptest! {
        #[test]
        fn escaped_text_is_safe_and_keeps_the_rest(text in "\\PC{0,40}|[\\x00-\\x1f\\x7f-\\x9f\u{200E}\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}a-z]{0,40}") {
            let escaped = escape(&text);
            prop_assert!(!escaped.chars().any(is_unsafe_for_terminal), "{:?}", escaped);
            let kept: String = text.chars().filter(|c| !is_unsafe_for_terminal(*c) && *c != '\\').collect();
            let left: String = escaped.chars().filter(|c| *c != '\\').collect();
            // Every safe character survives, in order.
            let mut rest = left.chars();
            prop_assert!(kept.chars().all(|c| rest.any(|d| d == c)), "{:?} -> {:?}", text, escaped);
        }
    }
}
