//! Which of a receiver's response headers an attempt keeps: any receiver
//! chooses them, so what is stored per attempt is bounded in count and in
//! bytes, like the captured body, and says when something was left out.

use std::collections::BTreeMap;

/// At most this many headers are kept from one answer.
pub const MAX_HEADERS: usize = 64;

/// At most this many bytes of names and values are kept from one answer.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The stored key that notes left-out headers. A space and parentheses are
/// not allowed in an HTTP header name, so no receiver can send it.
pub const TRUNCATED_KEY: &str = "(truncated)";

/// The headers kept from one answer, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapturedHeaders {
    pub kept: BTreeMap<String, String>,
    pub omitted_count: usize,
    pub omitted_bytes: usize,
}

impl CapturedHeaders {
    /// Keeps headers in the order received while they fit in
    /// [`MAX_HEADERS`] and [`MAX_HEADER_BYTES`]; one that does not fit is
    /// left out, and a smaller one after it may still be kept. A repeated
    /// name keeps its last value, and its earlier one no longer counts.
    pub fn capture<I>(headers: I) -> CapturedHeaders
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut captured = CapturedHeaders::default();
        let mut used = 0usize;
        for (name, value) in headers {
            let size = name.len() + value.len();
            let replaced = captured
                .kept
                .get(&name)
                .map_or(0, |old| name.len() + old.len());
            let count_after = captured.kept.len() + usize::from(replaced == 0);
            if count_after > MAX_HEADERS || used - replaced + size > MAX_HEADER_BYTES {
                captured.omitted_count += 1;
                captured.omitted_bytes += size;
                continue;
            }
            used = used - replaced + size;
            captured.kept.insert(name, value);
        }
        captured
    }

    pub fn is_truncated(&self) -> bool {
        self.omitted_count > 0
    }

    /// The stored form: a JSON object of name → value, with
    /// [`TRUNCATED_KEY`] describing what was left out, if anything.
    pub fn to_stored(&self) -> BTreeMap<String, String> {
        let mut stored = self.kept.clone();
        if self.is_truncated() {
            stored.insert(
                TRUNCATED_KEY.to_owned(),
                format!(
                    "{} headers ({} bytes) not kept",
                    self.omitted_count, self.omitted_bytes
                ),
            );
        }
        stored
    }
}

/// Splits a stored header object into the headers and whether some were
/// left out.
pub fn from_stored(
    mut stored: serde_json::Map<String, serde_json::Value>,
) -> (serde_json::Map<String, serde_json::Value>, bool) {
    let truncated = stored.remove(TRUNCATED_KEY).is_some();
    (stored, truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, len: usize) -> (String, String) {
        (name.to_owned(), "v".repeat(len))
    }

    #[test]
    fn a_small_answer_is_kept_whole() {
        let captured = CapturedHeaders::capture([header("date", 29), header("server", 5)]);
        assert_eq!(captured.kept.len(), 2);
        assert!(!captured.is_truncated());
        assert!(!captured.to_stored().contains_key(TRUNCATED_KEY));
    }

    #[test]
    fn large_headers_are_kept_only_up_to_the_byte_bound() {
        let headers = (0..95).map(|n| header(&format!("x-big-{n:02}"), 4000));
        let captured = CapturedHeaders::capture(headers);
        let kept_bytes: usize = captured.kept.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(kept_bytes <= MAX_HEADER_BYTES, "{kept_bytes}");
        assert_eq!(captured.kept.len(), 4);
        assert_eq!(captured.omitted_count, 91);
        assert_eq!(captured.omitted_bytes, 91 * (8 + 4000));
        assert_eq!(
            captured.to_stored()[TRUNCATED_KEY],
            "91 headers (364728 bytes) not kept"
        );
    }

    #[test]
    fn many_small_headers_are_kept_only_up_to_the_count_bound() {
        let headers = (0..100).map(|n| header(&format!("x-{n:03}"), 1));
        let captured = CapturedHeaders::capture(headers);
        assert_eq!(captured.kept.len(), MAX_HEADERS);
        assert_eq!(captured.omitted_count, 100 - MAX_HEADERS);
        // The first received are the ones kept.
        assert!(captured.kept.contains_key("x-000"));
        assert!(!captured.kept.contains_key("x-099"));
    }

    #[test]
    fn one_oversized_header_does_not_hide_the_ones_after_it() {
        let captured = CapturedHeaders::capture([
            header("set-cookie", MAX_HEADER_BYTES),
            header("content-type", 16),
        ]);
        assert!(captured.kept.contains_key("content-type"));
        assert_eq!(captured.omitted_count, 1);
    }

    #[test]
    fn a_repeated_name_counts_once_with_its_last_value() {
        let captured = CapturedHeaders::capture([header("vary", 10), header("vary", 20)]);
        assert_eq!(captured.kept["vary"].len(), 20);
        assert!(!captured.is_truncated());
        let at_the_bound = (0..MAX_HEADERS + 10).map(|_| header("vary", 1));
        assert!(!CapturedHeaders::capture(at_the_bound).is_truncated());
    }

    #[test]
    fn the_stored_form_reads_back_with_its_mark() {
        let captured = CapturedHeaders::capture((0..70).map(|n| header(&format!("x-{n}"), 1)));
        let json = serde_json::to_value(captured.to_stored()).expect("serializes");
        let serde_json::Value::Object(map) = json else {
            panic!("an object")
        };
        let (headers, truncated) = from_stored(map);
        assert!(truncated);
        assert_eq!(headers.len(), MAX_HEADERS);
    }
}
