//! A group commit of ingestions answers and stores what the same events
//! ingested one by one would: duplicates by id and by idempotency key,
//! fan-outs to deleted endpoints, and the state a delivery is stored in.

use super::{ingest, numbers_taken_out, open_with_endpoints, stored_delivery, Input, NOW, TENANT};
use crate::common::TestDb;
use hookrelay::core::delivery::lifecycle::DeliveryState;
use hookrelay::store::events::Ingested;
use hookrelay::store::{deliveries, endpoints, Db};

backend_tests!(
    a_batch_of_ingestions_answers_as_one_by_one,
    a_waiting_delivery_is_stored_by_the_status_its_endpoint_has_at_the_commit,
);

async fn a_batch_of_ingestions_answers_as_one_by_one(test_db: TestDb) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_a", "ep_b", "ep_gone"]);
    let stored = Input::new("evt_stored", Some("key_stored"), &["ep_a"]);
    let first = ingest(&mut db, &[&stored]);
    assert!(matches!(&first[0], Ingested::New { deliveries } if deliveries.len() == 1));
    // Deleted after the router computed the fan-out, before the write.
    assert!(endpoints::delete(&mut db, TENANT, "ep_gone").expect("delete endpoint"));

    let new = Input::new("evt_new", None, &["ep_a", "ep_b"]);
    let same_id = Input::new("evt_new", None, &["ep_a"]);
    let stored_key = Input::new("evt_other", Some("key_stored"), &["ep_a"]);
    let stored_id = Input::new("evt_stored", Some("key_fresh"), &["ep_b"]);
    let keyed = Input::new("evt_keyed", Some("key_batch"), &["ep_b"]);
    let same_key = Input::new("evt_keyed_again", Some("key_batch"), &["ep_a"]);
    // Refused for its key, so the next input with its id is not a duplicate.
    let refused = Input::new("evt_late", Some("key_stored"), &["ep_a"]);
    let after_refused = Input::new("evt_late", None, &["ep_b"]);
    let to_gone = Input::new("evt_gone", None, &["ep_a", "ep_gone"]);
    let outcomes = ingest(
        &mut db,
        &[
            &new,
            &same_id,
            &stored_key,
            &stored_id,
            &keyed,
            &same_key,
            &refused,
            &after_refused,
            &to_gone,
        ],
    );

    let duplicate = |event_id: &str, deliveries: usize| Ingested::Duplicate {
        event_id: event_id.to_owned(),
        deliveries,
    };
    let (outcomes, numbers) = numbers_taken_out(outcomes);
    assert!(
        numbers.windows(2).all(|pair| pair[0] < pair[1]),
        "numbered in the order written: {numbers:?}"
    );
    assert_eq!(
        outcomes,
        vec![
            new.written(&[0, 1]),
            duplicate("evt_new", 2),
            duplicate("evt_stored", 1),
            duplicate("evt_stored", 1),
            keyed.written(&[0]),
            duplicate("evt_keyed", 1),
            duplicate("evt_stored", 1),
            after_refused.written(&[0]),
            to_gone.written(&[0]),
        ],
        "on {}",
        test_db.backend()
    );
    for (event, endpoints) in [
        ("evt_stored", vec!["ep_a"]),
        ("evt_new", vec!["ep_a", "ep_b"]),
        ("evt_keyed", vec!["ep_b"]),
        ("evt_keyed_again", vec![]),
        ("evt_late", vec!["ep_b"]),
        ("evt_gone", vec!["ep_a"]),
    ] {
        let stored = deliveries::for_event(&mut db, TENANT, event).expect("deliveries of event");
        let mut found: Vec<&str> = stored.iter().map(|d| d.endpoint_id.as_str()).collect();
        found.sort_unstable();
        assert_eq!(found, endpoints, "deliveries stored for {event}");
    }
}

/// The router's flag may lag a status change that commits just before a
/// publish: the state comes from the endpoint row read in the transaction.
async fn a_waiting_delivery_is_stored_by_the_status_its_endpoint_has_at_the_commit(
    test_db: TestDb,
) {
    let (_store, mut db) = open_with_endpoints(&test_db, &["ep_live", "ep_off"]);
    let mut guessed_held = Input::new("evt_to_live", None, &["ep_live"]);
    guessed_held.deliveries[0].state = DeliveryState::Held.as_str().to_owned();
    guessed_held.deliveries[0].next_attempt_at = None;
    let guessed_pending = Input::new("evt_to_off", None, &["ep_off"]);
    let outcomes = ingest(&mut db, &[&guessed_held, &guessed_pending]);
    let backend = test_db.backend();
    let written: Vec<Vec<(String, bool)>> = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ingested::New { deliveries } => {
                deliveries.into_iter().map(|d| (d.id, d.held)).collect()
            }
            Ingested::Duplicate { .. } => panic!("not a duplicate on {backend}"),
        })
        .collect();
    assert_eq!(
        written,
        vec![
            vec![(guessed_held.deliveries[0].id.clone(), false)],
            vec![(guessed_pending.deliveries[0].id.clone(), true)],
        ],
        "on {backend}"
    );
    let stored = |db: &mut Db, input: &Input| {
        let row = stored_delivery(db, &input.deliveries[0].id);
        (row.state, row.next_attempt_at)
    };
    assert_eq!(
        stored(&mut db, &guessed_held),
        ("pending".to_owned(), Some(NOW)),
        "on {backend}"
    );
    assert_eq!(
        stored(&mut db, &guessed_pending),
        ("held".to_owned(), None),
        "on {backend}"
    );
}
