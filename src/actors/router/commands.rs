//! Status changes, and reads of the live state, asked through an instance
//! that does not own the endpoint. Only the owner's actor changes an endpoint's status (its
//! machine orders a status change with in-flight attempts and backlog
//! moves), so the asking instance writes a command
//! ([`crate::store::commands`]), signals the owner, and waits for the
//! answer; the owner reads commands at once on the signal and every second
//! without it, and takes each before carrying it out. A command no owner
//! took within [`ANSWER_WITHIN`] is withdrawn, and the request fails having
//! changed nothing; one taken but not answered within twice that fails
//! saying the change may have been made. Every wait is bounded.

use super::Router;
use crate::actors::endpoint::{EndpointSnapshot, GetSnapshot};
use crate::core::delivery::lifecycle::BacklogMove;
use crate::core::endpoint_machine::MachineSnapshot;
use crate::core::health::breaker::{Breaker, CircuitState};
use crate::core::health::failure_policy::Streak;
use crate::store::commands::{self, CommandState, Waiting};
use crate::store::endpoint_state::{EnableOutcome, Replay};
use crate::store::signals::{self, Signal};
use crate::store::StoreError;
use crate::time::now_ms;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long an asker waits for the owner: a lease's life and a round, so
/// that a dead owner's successor has taken the endpoint over.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// How long a health view waits for the owner's live state before it
/// shows the stored one (no owner, or a slow one).
pub(super) const SNAPSHOT_WITHIN: Duration = Duration::from_secs(2);

/// How often the asker looks for the answer.
const ANSWER_POLL: Duration = Duration::from_millis(25);

/// How often the owner looks for commands when no signal came.
const COMMAND_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Command {
    Disable,
    Enable(Replay),
    /// The actor's live state, for a health view read elsewhere.
    Snapshot,
}

impl Command {
    fn as_str(self) -> &'static str {
        match self {
            Command::Disable => "disable",
            Command::Enable(Replay::Held) => "enable:replay",
            Command::Enable(Replay::None) => "enable:cancel",
            Command::Snapshot => "snapshot",
        }
    }

    fn parse(text: &str) -> Option<Command> {
        match text {
            "disable" => Some(Command::Disable),
            "enable:replay" => Some(Command::Enable(Replay::Held)),
            "enable:cancel" => Some(Command::Enable(Replay::None)),
            "snapshot" => Some(Command::Snapshot),
            _ => None,
        }
    }
}

/// The owner's answer, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(super) enum Answer {
    Disabled {
        changed: bool,
    },
    Enabled {
        replayed: usize,
        cancelled: usize,
    },
    Snapshot(LiveState),
    /// The endpoint is unknown to its owner (deleted meanwhile).
    Unknown,
    Failed {
        error: String,
    },
}

/// What a status change answers, as carried between instances.
pub(super) trait Answered: Sized + 'static {
    fn to_answer(outcome: Option<Result<Self, StoreError>>) -> Answer;
    fn from_answer(answer: Answer) -> Option<Result<Self, StoreError>>;
}

fn failed<T>(outcome: Option<Result<T, StoreError>>, ok: impl FnOnce(T) -> Answer) -> Answer {
    match outcome {
        None => Answer::Unknown,
        Some(Ok(value)) => ok(value),
        Some(Err(error)) => Answer::Failed {
            error: error.to_string(),
        },
    }
}

fn refused<T>(answer: Answer) -> Option<Result<T, StoreError>> {
    match answer {
        Answer::Unknown => None,
        Answer::Failed { error } => Some(Err(StoreError::Busy(error))),
        other => Some(Err(StoreError::Corrupt(format!(
            "an unexpected answer to a status change: {other:?}"
        )))),
    }
}

impl Answered for bool {
    fn to_answer(outcome: Option<Result<bool, StoreError>>) -> Answer {
        failed(outcome, |changed| Answer::Disabled { changed })
    }

    fn from_answer(answer: Answer) -> Option<Result<bool, StoreError>> {
        match answer {
            Answer::Disabled { changed } => Some(Ok(changed)),
            other => refused(other),
        }
    }
}

impl Answered for EnableOutcome {
    fn to_answer(outcome: Option<Result<EnableOutcome, StoreError>>) -> Answer {
        failed(outcome, |o| Answer::Enabled {
            replayed: o.replayed,
            cancelled: o.cancelled,
        })
    }

    fn from_answer(answer: Answer) -> Option<Result<EnableOutcome, StoreError>> {
        match answer {
            Answer::Enabled {
                replayed,
                cancelled,
            } => Some(Ok(EnableOutcome {
                replayed,
                cancelled,
            })),
            other => refused(other),
        }
    }
}

/// An endpoint actor's live state as carried between instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LiveState {
    circuit: String,
    opened_at: Option<i64>,
    next_probe_at: Option<i64>,
    cooldown_ms: i64,
    consecutive_failures: u32,
    failing_since: Option<i64>,
    alerted: Vec<u32>,
    alert_raised: bool,
    queued: usize,
    in_flight: usize,
    backlog_on_disk: bool,
    moving: Option<String>,
    restarts: u32,
    last_error: Option<String>,
    waiting_for_slot: usize,
}

impl From<&EndpointSnapshot> for LiveState {
    fn from(live: &EndpointSnapshot) -> LiveState {
        let machine = &live.machine;
        LiveState {
            circuit: machine.breaker.state.as_str().to_owned(),
            opened_at: machine.breaker.opened_at,
            next_probe_at: machine.breaker.next_probe_at,
            cooldown_ms: machine.breaker.cooldown_ms,
            consecutive_failures: machine.streak.consecutive_failures,
            failing_since: machine.streak.failing_since,
            alerted: machine.streak.alerted.clone(),
            alert_raised: machine.streak.alert_raised,
            queued: machine.queued,
            in_flight: machine.in_flight,
            backlog_on_disk: machine.backlog_on_disk,
            moving: machine.moving.map(|kind| kind.as_str().to_owned()),
            restarts: live.restarts,
            last_error: live.last_error.clone(),
            waiting_for_slot: live.waiting_for_slot,
        }
    }
}

impl LiveState {
    fn snapshot(self) -> Result<EndpointSnapshot, StoreError> {
        let circuit = CircuitState::parse(&self.circuit)
            .ok_or_else(|| StoreError::Corrupt(format!("a circuit state {:?}", self.circuit)))?;
        Ok(EndpointSnapshot {
            machine: MachineSnapshot {
                breaker: Breaker {
                    state: circuit,
                    opened_at: self.opened_at,
                    next_probe_at: self.next_probe_at,
                    cooldown_ms: self.cooldown_ms,
                },
                streak: Streak {
                    consecutive_failures: self.consecutive_failures,
                    failing_since: self.failing_since,
                    alerted: self.alerted,
                    alert_raised: self.alert_raised,
                },
                queued: self.queued,
                in_flight: self.in_flight,
                backlog_on_disk: self.backlog_on_disk,
                moving: self.moving.as_deref().and_then(BacklogMove::parse),
            },
            restarts: self.restarts,
            last_error: self.last_error,
            waiting_for_slot: self.waiting_for_slot,
        })
    }
}

impl Answered for EndpointSnapshot {
    fn to_answer(outcome: Option<Result<EndpointSnapshot, StoreError>>) -> Answer {
        failed(outcome, |live| Answer::Snapshot(LiveState::from(&live)))
    }

    fn from_answer(answer: Answer) -> Option<Result<EndpointSnapshot, StoreError>> {
        match answer {
            Answer::Snapshot(live) => Some(live.snapshot()),
            other => refused(other),
        }
    }
}

impl Router {
    /// Asks the endpoint's owner to carry out `command`, and waits for its
    /// answer: [`ANSWER_WITHIN`] for it to be taken.
    pub(super) fn forward<T: Answered>(
        &mut self,
        endpoint_id: String,
        command: Command,
    ) -> ResponseActFuture<Self, Option<Result<T, StoreError>>> {
        self.forward_within(endpoint_id, command, ANSWER_WITHIN)
    }

    /// Like [`Self::forward`], waiting `within` for the command to be taken
    /// (and twice that for its answer).
    pub(super) fn forward_within<T: Answered>(
        &mut self,
        endpoint_id: String,
        command: Command,
        within: Duration,
    ) -> ResponseActFuture<Self, Option<Result<T, StoreError>>> {
        let store = self.store.clone();
        let asked = async move {
            let id = crate::ids::time_ordered("cmd");
            let (command_id, endpoint) = (id.clone(), endpoint_id.clone());
            store
                .run(move |db| {
                    commands::ask(db, &command_id, &endpoint, command.as_str(), now_ms())?;
                    // After the commit: the owner reads what it is told of.
                    signals::send(db, &[Signal::Command(endpoint)])
                })
                .await?;
            let began = Instant::now();
            loop {
                actix_rt::time::sleep(ANSWER_POLL).await;
                let command_id = id.clone();
                let state = store
                    .run(move |db| commands::state(db, &command_id))
                    .await?;
                let waited = began.elapsed();
                match state {
                    CommandState::Answered(answer) => {
                        return serde_json::from_str::<Answer>(&answer)
                            .map_err(|e| StoreError::Corrupt(format!("a command's answer: {e}")));
                    }
                    // Deleted with its endpoint.
                    CommandState::Gone => return Ok(Answer::Unknown),
                    CommandState::Waiting if waited >= within => {
                        let command_id = id.clone();
                        if store
                            .run(move |db| commands::withdraw(db, &command_id))
                            .await?
                        {
                            return Err(StoreError::Busy(format!(
                                "the instance that owns endpoint {endpoint_id} did not answer within {within:?}; nothing was changed, try again"
                            )));
                        }
                    }
                    CommandState::Taken if waited >= 2 * within => {
                        return Err(StoreError::Busy(format!(
                            "the instance that owns endpoint {endpoint_id} took the change but did not answer within {:?}; it may have been made: read the endpoint",
                            2 * within
                        )));
                    }
                    CommandState::Waiting | CommandState::Taken => {}
                }
            }
        };
        Box::pin(
            asked
                .into_actor(self)
                .map(|answer, _act, _ctx| match answer {
                    Ok(answer) => T::from_answer(answer),
                    Err(error) => Some(Err(error)),
                }),
        )
    }

    pub(super) fn poll_commands(&self, ctx: &mut Context<Self>) {
        ctx.run_interval(COMMAND_POLL, |act, ctx| act.read_commands(ctx));
    }

    /// Carries out the waiting commands of the endpoints this instance owns.
    pub(super) fn read_commands(&mut self, ctx: &mut Context<Self>) {
        if self.leases.is_empty() {
            return;
        }
        let store = self.store.clone();
        let read = async move { store.run(|db| commands::waiting(db, 100)).await };
        ctx.spawn(read.into_actor(self).map(|read, act, ctx| match read {
            Ok(waiting) => {
                for command in waiting {
                    act.carry_out_command(command, ctx);
                }
            }
            Err(error) => log::warn!("reading other instances' commands failed: {error}"),
        }));
    }

    fn carry_out_command(&mut self, waiting: Waiting, ctx: &mut Context<Self>) {
        let owned = self.leases.contains_key(&waiting.endpoint_id)
            && !self.releasing.contains(&waiting.endpoint_id);
        if !owned {
            return;
        }
        if !self.routes.contains_key(&waiting.endpoint_id) {
            // Taken before this instance read its configuration: the next
            // poll carries the command out.
            self.read_registry(ctx);
            return;
        }
        if !self.commands_running.insert(waiting.id.clone()) {
            return;
        }
        let store = self.store.clone();
        let command_id = waiting.id.clone();
        let taken = async move {
            store
                .run(move |db| commands::take(db, &command_id, now_ms()))
                .await
        };
        ctx.spawn(
            taken
                .into_actor(self)
                .map(move |taken, act, ctx| match taken {
                    Ok(true) => act.carry_out_taken(waiting, ctx),
                    // Withdrawn by its asker, or taken by an earlier owner.
                    Ok(false) => {
                        act.commands_running.remove(&waiting.id);
                    }
                    Err(error) => {
                        // The next poll tries again.
                        log::warn!("taking command {} failed: {error}", waiting.id);
                        act.commands_running.remove(&waiting.id);
                    }
                }),
        );
    }

    fn carry_out_taken(&mut self, waiting: Waiting, ctx: &mut Context<Self>) {
        let Waiting {
            id, endpoint_id, ..
        } = waiting.clone();
        let done: ResponseActFuture<Self, Answer> = match Command::parse(&waiting.command) {
            Some(Command::Disable) => Box::pin(
                self.disable_here(endpoint_id)
                    .map(|outcome, _act, _ctx| bool::to_answer(outcome)),
            ),
            Some(Command::Enable(replay)) => Box::pin(
                self.enable_here(endpoint_id, replay)
                    .map(|outcome, _act, _ctx| EnableOutcome::to_answer(outcome)),
            ),
            Some(Command::Snapshot) => {
                let actor = self.actor(&endpoint_id);
                let ask = async move {
                    let Some(actor) = actor else {
                        return Answer::Unknown;
                    };
                    let live = actor.send(GetSnapshot).await.ok();
                    EndpointSnapshot::to_answer(live.map(Ok))
                };
                Box::pin(ask.into_actor(self))
            }
            None => Box::pin(fut::ready(Answer::Failed {
                error: format!("unknown command {:?}", waiting.command),
            })),
        };
        ctx.spawn(done.then(move |answer, act, _ctx| {
            let store = act.store.clone();
            let text = serde_json::to_string(&answer).unwrap_or_default();
            let command_id = id.clone();
            async move {
                let written = store
                    .run(move |db| commands::answer(db, &command_id, &text, now_ms()))
                    .await;
                (id, written)
            }
            .into_actor(act)
            .map(|(id, written), act, _ctx| {
                act.commands_running.remove(&id);
                if let Err(error) = written {
                    // The asker withdraws it, or it is carried out again:
                    // a status change made twice changes nothing more.
                    log::warn!("answering command {id} failed: {error}");
                }
            })
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_answers_survive_their_stored_form() {
        for command in [
            Command::Disable,
            Command::Enable(Replay::Held),
            Command::Enable(Replay::None),
            Command::Snapshot,
        ] {
            assert_eq!(Command::parse(command.as_str()), Some(command));
        }
        let answer = EnableOutcome::to_answer(Some(Ok(EnableOutcome {
            replayed: 3,
            cancelled: 0,
        })));
        let stored = serde_json::to_string(&answer).unwrap();
        let read: Answer = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            EnableOutcome::from_answer(read).unwrap().unwrap(),
            EnableOutcome {
                replayed: 3,
                cancelled: 0
            }
        );
        assert!(matches!(
            bool::from_answer(Answer::Failed {
                error: "x".to_owned()
            }),
            Some(Err(StoreError::Busy(_)))
        ));
        assert!(bool::from_answer(Answer::Unknown).is_none());
    }

    #[test]
    fn a_live_state_survives_its_stored_form() {
        let live = EndpointSnapshot {
            machine: MachineSnapshot {
                breaker: Breaker {
                    state: CircuitState::Open,
                    opened_at: Some(1_000),
                    next_probe_at: Some(31_000),
                    cooldown_ms: 60_000,
                },
                streak: Streak {
                    consecutive_failures: 5,
                    failing_since: Some(900),
                    alerted: vec![3, 5],
                    alert_raised: true,
                },
                queued: 7,
                in_flight: 2,
                backlog_on_disk: true,
                moving: Some(BacklogMove::Replay),
            },
            restarts: 1,
            last_error: Some("disk full".to_owned()),
            waiting_for_slot: 1,
        };
        let stored = serde_json::to_string(&EndpointSnapshot::to_answer(Some(Ok(live.clone()))))
            .expect("stored");
        let read: Answer = serde_json::from_str(&stored).expect("read");
        let back = EndpointSnapshot::from_answer(read)
            .expect("an answer")
            .expect("a snapshot");
        assert_eq!(LiveState::from(&back), LiveState::from(&live));
    }
}
