//! Signals between instances sharing a PostgreSQL database, through its
//! `NOTIFY` and `LISTEN`: the fast way for one instance to tell the owner of
//! an endpoint that work waits for it. A signal can be lost (the listener's
//! connection was down when it was sent), so every signal has a slower
//! path that makes it correct without it: the registry and command polls,
//! and the listener's own rescan of the owned endpoints once it reconnects.
//! SQLite serves one instance, which needs no signal.

use super::{Db, StoreError};
use crate::core::delivery::retry::doubling_backoff;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Array, Text};
use std::time::{Duration, Instant};

/// The channel every instance listens on.
const CHANNEL: &str = "hookrelay";

/// How often the listener looks for notifications: the most a signal waits.
const LISTEN_TICK: Duration = Duration::from_millis(20);

/// How often the listener checks that its connection is alive.
const LIVENESS_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Deliveries of this endpoint wait on disk, unknown to its owner.
    Work(String),
    /// One new delivery for an endpoint another instance owns: the owner
    /// reads it by id and hands it to the actor, as a local publish would.
    Delivery {
        endpoint_id: String,
        delivery_id: String,
        seq: i64,
    },
    /// A status change of this endpoint waits for its owner.
    Command(String),
    /// Some tenant's endpoints changed.
    Registry,
}

impl Signal {
    fn payload(&self) -> String {
        match self {
            Signal::Work(id) => format!("work:{id}"),
            // The endpoint id last: it is the only part that may hold ':'.
            Signal::Delivery {
                endpoint_id,
                delivery_id,
                seq,
            } => format!("delivery:{seq}:{delivery_id}:{endpoint_id}"),
            Signal::Command(id) => format!("command:{id}"),
            Signal::Registry => "registry".to_owned(),
        }
    }

    fn parse(payload: &str) -> Option<Signal> {
        match payload.split_once(':') {
            Some(("work", id)) => Some(Signal::Work(id.to_owned())),
            Some(("delivery", rest)) => {
                let (seq, rest) = rest.split_once(':')?;
                let (delivery_id, endpoint_id) = rest.split_once(':')?;
                Some(Signal::Delivery {
                    endpoint_id: endpoint_id.to_owned(),
                    delivery_id: delivery_id.to_owned(),
                    seq: seq.parse().ok()?,
                })
            }
            Some(("command", id)) => Some(Signal::Command(id.to_owned())),
            None if payload == "registry" => Some(Signal::Registry),
            _ => None,
        }
    }
}

/// Sends `signals` to every listening instance (this one included).
pub fn send(db: &mut Db, signals: &[Signal]) -> Result<(), StoreError> {
    let Db::Postgres(c) = db else {
        return Ok(());
    };
    let payloads: Vec<String> = signals.iter().map(Signal::payload).collect();
    diesel::sql_query("SELECT pg_notify($1, payload) FROM unnest($2) AS payload")
        .bind::<Text, _>(CHANNEL)
        .bind::<Array<Text>, _>(payloads)
        .execute(&mut **c)?;
    Ok(())
}

/// What the listener reports.
pub enum Heard {
    /// Its connection was (re)established: what was sent while it was
    /// down is lost, so the receiver looks for it itself.
    Connected,
    Signals(Vec<Signal>),
}

/// Listens on a connection of its own, on a thread of its own, and hands
/// what it hears to `deliver`, until `deliver` answers `false` (its
/// receiver is gone). Reconnects after a backoff when the connection fails.
pub fn listen(url: String, deliver: impl Fn(Heard) -> bool + Send + 'static) {
    let spawned = std::thread::Builder::new()
        .name("hookrelay-listen".to_owned())
        .spawn(move || {
            let mut failures = 0;
            loop {
                let outcome = PgConnection::establish(&url)
                    .map_err(|e| e.to_string())
                    .and_then(|mut conn| {
                        conn.batch_execute(&format!("LISTEN {CHANNEL}"))
                            .map_err(|e| e.to_string())?;
                        failures = 0;
                        listen_on(&mut conn, &deliver)
                    });
                match outcome {
                    Ok(()) => return,
                    Err(error) => {
                        failures += 1;
                        let wait = doubling_backoff(
                            Duration::from_millis(200),
                            failures,
                            Duration::from_secs(5),
                        );
                        log::warn!(
                            "listening for other instances' signals failed ({error}); again in {wait:?}"
                        );
                        if !deliver(Heard::Signals(Vec::new())) {
                            return;
                        }
                        std::thread::sleep(wait);
                    }
                }
            }
        });
    if let Err(error) = spawned {
        log::error!("cannot start the listener for other instances' signals: {error}");
    }
}

/// Ok once the receiver is gone; an error when the connection failed.
fn listen_on(conn: &mut PgConnection, deliver: &impl Fn(Heard) -> bool) -> Result<(), String> {
    if !deliver(Heard::Connected) {
        return Ok(());
    }
    let mut checked = Instant::now();
    loop {
        std::thread::sleep(LISTEN_TICK);
        let mut heard = Vec::new();
        for notification in conn.notifications_iter() {
            let notification = notification.map_err(|e| e.to_string())?;
            heard.extend(Signal::parse(&notification.payload));
        }
        heard.dedup();
        if !deliver(Heard::Signals(heard)) {
            return Ok(());
        }
        if checked.elapsed() >= LIVENESS_CHECK {
            conn.batch_execute("SELECT 1").map_err(|e| e.to_string())?;
            checked = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Signal;

    #[test]
    fn signals_survive_their_payload() {
        for signal in [
            Signal::Work("ep_1".to_owned()),
            Signal::Delivery {
                endpoint_id: "ep:odd".to_owned(),
                delivery_id: "dlv_1".to_owned(),
                seq: 42,
            },
            Signal::Command("ep_2".to_owned()),
            Signal::Registry,
        ] {
            assert_eq!(Signal::parse(&signal.payload()), Some(signal));
        }
        assert_eq!(Signal::parse("other"), None);
    }
}
