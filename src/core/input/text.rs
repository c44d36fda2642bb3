//! Text we did not write (a receiver's answer, an error from the network)
//! made storable in any database we support, and the rule for text we
//! accept as input.
//!
//! PostgreSQL refuses NUL in `text` values; the other C0 control characters
//! (except tab, line feed and carriage return) mean nothing in a diagnostic
//! and are replaced too, so what we keep is the same on every backend.

use std::borrow::Cow;

/// C0 control characters other than `\t`, `\n` and `\r`: never stored.
pub fn is_unstorable(c: char) -> bool {
    c < '\u{20}' && !matches!(c, '\t' | '\n' | '\r')
}

/// `s` with every [`is_unstorable`] character replaced by U+FFFD (the
/// replacement character lossy UTF-8 decoding already uses); borrowed when
/// nothing needed replacing.
pub fn storable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unstorable) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if is_unstorable(c) {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect(),
    )
}

/// Bytes of unknown encoding as storable text: invalid UTF-8 and
/// [`is_unstorable`] characters become U+FFFD.
pub fn storable_lossy(bytes: &[u8]) -> String {
    storable(&String::from_utf8_lossy(bytes)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_other_c0_controls_are_replaced() {
        assert_eq!(storable("abc\0def"), "abc\u{fffd}def");
        assert_eq!(storable("\u{1b}[31mred\u{7}"), "\u{fffd}[31mred\u{fffd}");
        assert_eq!(storable("\0"), "\u{fffd}");
    }

    #[test]
    fn tab_newline_and_carriage_return_are_kept() {
        assert_eq!(storable("a\tb\r\nc\n"), "a\tb\r\nc\n");
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        assert!(matches!(
            storable("plain text, ünïcödé ✓"),
            Cow::Borrowed(_)
        ));
        // DEL and C1 controls are valid in PostgreSQL text and kept.
        assert_eq!(storable("\u{7f}\u{85}"), "\u{7f}\u{85}");
    }

    #[test]
    fn invalid_utf8_and_nul_both_become_replacement_characters() {
        assert_eq!(storable_lossy(b"ok\xff\x00!"), "ok\u{fffd}\u{fffd}!");
    }
}
