//! The rescue sweep's decision: what an endpoint needs when the database
//! shows work that no actor may know of.
//!
//! An actor learns of a delivery from the router's hand-over after the
//! commit, or from a page it reads. A commit whose reply was lost (the
//! connection broke during `COMMIT`, but the commit happened) hands nothing
//! over, and the client's retry is a duplicate, which hands nothing over
//! either; a status change whose reply was lost leaves the router's flag
//! guessing. The sweep reads, a batch of endpoints at a time, what the
//! database holds for each, and this decides what to do about it. Every
//! rescue is harmless when nothing was lost: a page skips what the window
//! holds, and a reload rebuilds the machine from the database.

/// What the sweep read of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDisk {
    /// The endpoint's status as committed.
    pub active: bool,
    /// A backlog move (hold, replay, cancel) is under way: its batches
    /// settle the waiting deliveries, the sweep leaves them to it.
    pub moving: bool,
    /// A `pending` delivery was due before the sweep's cut-off.
    pub due_pending: bool,
    /// A `held` delivery waits.
    pub held: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rescue {
    /// The router's flag differs from the committed status: take the
    /// committed one (never guess from a lost reply).
    SetActive(bool),
    /// The actor reads its due deliveries from disk.
    ReadDisk,
    /// The actor reloads: loading takes the committed status (the actor
    /// may have missed it as the router did) and settles deliveries left in
    /// the wrong state for it (held on an active endpoint, pending on a
    /// disabled one) with a backlog move.
    Reload,
}

/// What the endpoint needs, given what the database holds and what the
/// router believes (`router_active`).
pub fn rescues(on_disk: OnDisk, router_active: bool) -> Vec<Rescue> {
    let mut rescues = Vec::new();
    let stale_flag = router_active != on_disk.active;
    if stale_flag {
        rescues.push(Rescue::SetActive(on_disk.active));
    }
    let misplaced = if on_disk.active {
        on_disk.held
    } else {
        on_disk.due_pending
    };
    if (stale_flag || misplaced) && !on_disk.moving {
        rescues.push(Rescue::Reload);
    } else if on_disk.active && on_disk.due_pending {
        rescues.push(Rescue::ReadDisk);
    }
    rescues
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUIET: OnDisk = OnDisk {
        active: true,
        moving: false,
        due_pending: false,
        held: false,
    };

    #[test]
    fn an_endpoint_whose_disk_and_flag_agree_needs_nothing() {
        assert!(rescues(QUIET, true).is_empty());
        let disabled_with_held = OnDisk {
            active: false,
            held: true,
            ..QUIET
        };
        assert!(rescues(disabled_with_held, false).is_empty());
    }

    #[test]
    fn due_pending_deliveries_of_an_active_endpoint_are_read_from_disk() {
        let on_disk = OnDisk {
            due_pending: true,
            ..QUIET
        };
        assert_eq!(rescues(on_disk, true), vec![Rescue::ReadDisk]);
    }

    #[test]
    fn a_flag_left_by_a_lost_reply_takes_the_committed_status_and_the_actor_reloads() {
        assert_eq!(
            rescues(QUIET, false),
            vec![Rescue::SetActive(true), Rescue::Reload]
        );
        let disabled = OnDisk {
            active: false,
            ..QUIET
        };
        assert_eq!(
            rescues(disabled, true),
            vec![Rescue::SetActive(false), Rescue::Reload]
        );
    }

    #[test]
    fn a_held_delivery_of_an_active_endpoint_makes_its_actor_reload() {
        let on_disk = OnDisk {
            held: true,
            due_pending: true,
            ..QUIET
        };
        assert_eq!(rescues(on_disk, true), vec![Rescue::Reload]);
    }

    #[test]
    fn a_pending_delivery_of_a_disabled_endpoint_makes_its_actor_reload() {
        let on_disk = OnDisk {
            active: false,
            due_pending: true,
            ..QUIET
        };
        assert_eq!(rescues(on_disk, false), vec![Rescue::Reload]);
    }

    #[test]
    fn a_move_under_way_is_left_to_settle_the_backlog() {
        let replaying = OnDisk {
            moving: true,
            held: true,
            due_pending: true,
            ..QUIET
        };
        assert_eq!(rescues(replaying, true), vec![Rescue::ReadDisk]);
        assert_eq!(
            rescues(replaying, false),
            vec![Rescue::SetActive(true), Rescue::ReadDisk]
        );
        let holding = OnDisk {
            active: false,
            moving: true,
            due_pending: true,
            ..QUIET
        };
        assert!(rescues(holding, false).is_empty());
    }
}
