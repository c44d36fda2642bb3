//! Fan-out matching: which event types an endpoint subscribes to.

/// One subscription pattern: an exact type (`user.created`), a prefix
/// (`invoice.*`, matching every type below `invoice.`), or everything (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypePattern {
    Everything,
    Prefix(String),
    Exact(String),
}

impl EventTypePattern {
    pub fn parse(pattern: &str) -> Result<EventTypePattern, &'static str> {
        if pattern == "*" {
            return Ok(EventTypePattern::Everything);
        }
        let (body, is_prefix) = match pattern.strip_suffix(".*") {
            Some(body) => (body, true),
            None => (pattern, false),
        };
        crate::core::input::domain::check_event_type(body)
            .map_err(|_| "must be an event type, optionally ending in \".*\", or \"*\"")?;
        Ok(if is_prefix {
            EventTypePattern::Prefix(format!("{body}."))
        } else {
            EventTypePattern::Exact(body.to_owned())
        })
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventTypePattern::Everything => true,
            EventTypePattern::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            EventTypePattern::Exact(exact) => event_type == exact,
        }
    }

    pub fn as_string(&self) -> String {
        match self {
            EventTypePattern::Everything => "*".to_owned(),
            EventTypePattern::Prefix(prefix) => format!("{prefix}*"),
            EventTypePattern::Exact(exact) => exact.clone(),
        }
    }
}

/// An empty subscription list means every event published by the tenant.
/// hookrelay's own operational events (`hookrelay.…`) reach only endpoints
/// that name them: a catch-all endpoint must not start receiving alerts.
pub fn subscribes_to(patterns: &[EventTypePattern], event_type: &str) -> bool {
    if crate::core::delivery::envelope::is_operational(event_type) {
        return patterns
            .iter()
            .any(|p| *p != EventTypePattern::Everything && p.matches(event_type));
    }
    patterns.is_empty() || patterns.iter().any(|p| p.matches(event_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<EventTypePattern> {
        list.iter()
            .map(|p| EventTypePattern::parse(p).unwrap())
            .collect()
    }

    #[test]
    fn operational_events_reach_only_explicit_subscribers() {
        let alert = "hookrelay.endpoint.failing";
        assert!(!subscribes_to(&[], alert));
        assert!(!subscribes_to(&patterns(&["*"]), alert));
        assert!(subscribes_to(
            &patterns(&["*", "hookrelay.endpoint.*"]),
            alert
        ));
        assert!(subscribes_to(&patterns(&["hookrelay.*"]), alert));
        assert!(subscribes_to(&patterns(&[alert]), alert));
        assert!(!subscribes_to(
            &patterns(&["hookrelay.endpoint.enabled"]),
            alert
        ));
    }

    #[test]
    fn prefix_matches_every_level_below_it() {
        let p = patterns(&["invoice.*"]);
        assert!(subscribes_to(&p, "invoice.paid"));
        assert!(subscribes_to(&p, "invoice.payment.failed"));
        assert!(!subscribes_to(&p, "invoice"));
        assert!(!subscribes_to(&p, "invoices.paid"));
        assert!(!subscribes_to(&p, "user.created"));
    }

    #[test]
    fn exact_and_wildcard() {
        let p = patterns(&["user.created"]);
        assert!(subscribes_to(&p, "user.created"));
        assert!(!subscribes_to(&p, "user.created.twice"));
        assert!(subscribes_to(&patterns(&["*"]), "anything.at.all"));
    }

    #[test]
    fn empty_list_means_everything() {
        assert!(subscribes_to(&[], "user.created"));
    }

    #[test]
    fn rejects_wildcards_in_the_middle() {
        assert!(EventTypePattern::parse("invoice.*.paid").is_err());
        assert!(EventTypePattern::parse("").is_err());
        assert!(EventTypePattern::parse(".*").is_err());
    }

    #[test]
    fn renders_back_to_its_source() {
        for source in ["*", "invoice.*", "user.created"] {
            assert_eq!(EventTypePattern::parse(source).unwrap().as_string(), source);
        }
    }
}
