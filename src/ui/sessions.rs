//! Dashboard sessions: a random token in an HttpOnly cookie names the API
//! key the operator signed in with, and the CSRF token of its forms. Kept
//! in memory, bounded and expiring; the key is checked again on every page,
//! so a revoked key ends its sessions at once.

use std::collections::HashMap;

/// How long a session lasts from sign-in.
pub const SESSION_MS: i64 = 8 * 60 * 60 * 1000;

/// Sessions kept at most; the oldest goes first when a new one needs room.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub key: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

#[derive(Default)]
pub struct Sessions {
    by_token: HashMap<String, Session>,
}

impl Sessions {
    /// Opens a session under `token` at `now`.
    pub fn open(&mut self, token: String, key: String, csrf: String, now: i64) {
        if self.by_token.len() >= MAX_SESSIONS {
            self.by_token
                .retain(|_, session| session.expires_at_ms > now);
        }
        if self.by_token.len() >= MAX_SESSIONS {
            let oldest = self
                .by_token
                .iter()
                .min_by_key(|(_, session)| session.expires_at_ms)
                .map(|(token, _)| token.clone());
            if let Some(oldest) = oldest {
                self.by_token.remove(&oldest);
            }
        }
        let session = Session {
            key,
            csrf,
            expires_at_ms: now + SESSION_MS,
        };
        self.by_token.insert(token, session);
    }

    /// The session under `token`, unless it expired (then it is dropped).
    pub fn get(&mut self, token: &str, now: i64) -> Option<Session> {
        let session = self.by_token.get(token)?;
        if session.expires_at_ms <= now {
            self.by_token.remove(token);
            return None;
        }
        Some(session.clone())
    }

    pub fn close(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_until_it_expires_or_is_closed() {
        let mut sessions = Sessions::default();
        sessions.open("t1".into(), "key".into(), "csrf".into(), 1_000);
        let session = sessions.get("t1", 1_000 + SESSION_MS - 1).expect("open");
        assert_eq!(session.key, "key");
        assert_eq!(sessions.get("t1", 1_000 + SESSION_MS), None, "expired");
        assert_eq!(sessions.len(), 0, "an expired session is dropped");
        sessions.open("t2".into(), "key".into(), "csrf".into(), 1_000);
        sessions.close("t2");
        assert_eq!(sessions.get("t2", 1_001), None);
        assert_eq!(sessions.get("unknown", 1_001), None);
    }

    #[test]
    fn sessions_are_bounded_and_the_oldest_goes_first() {
        let mut sessions = Sessions::default();
        for n in 0..MAX_SESSIONS {
            sessions.open(format!("t{n}"), "key".into(), "csrf".into(), n as i64);
        }
        sessions.open("newest".into(), "key".into(), "csrf".into(), 1_000_000);
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.get("t0", 1_000_000), None, "the oldest made room");
        assert!(sessions.get("t1", 1_000_000).is_some());
        assert!(sessions.get("newest", 1_000_000).is_some());
    }
}
