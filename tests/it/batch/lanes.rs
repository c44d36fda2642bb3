//! The writer's lanes: groups in flight together keep every answer and the
//! order of calls, and the lanes end, closed or dropped, while handles to
//! them remain.

use super::{count_events, ids_of, ids_written, open_with_endpoints, Input};
use crate::common::{wait_until, TestDb, DELIVERY_TIMEOUT};
use diesel::prelude::*;
use futures_util::future::join_all;
use hookrelay::store::events::Ingested;
use hookrelay::store::schema::deliveries as delivery_table;
use hookrelay::store::writer::{Writer, MAX_LANES};
use hookrelay::store::StoreError;

backend_tests!(
    groups_in_flight_together_keep_every_answer_and_the_order_of_calls,
    closed_lanes_write_what_was_queued_and_end_while_handles_remain,
    lanes_dropped_with_the_application_end_while_handles_remain,
);

/// The writer at its most lanes (one on SQLite) under a queue filled at
/// once: rounds of new events, each queued twice (the copy later in the
/// round, so original and copy may sit in groups in flight together), each
/// round followed by a call that counts the stored events.
async fn groups_in_flight_together_keep_every_answer_and_the_order_of_calls(test_db: TestDb) {
    const ROUNDS: usize = 6;
    const PER_ROUND: usize = 120;
    let (store, mut db) = open_with_endpoints(&test_db, &["ep_a", "ep_b"]);
    let (writer, _lanes) =
        Writer::start(&store, MAX_LANES, detached_metrics()).expect("start the writer");
    let backend = test_db.backend();

    let mut pairs = Vec::new();
    let mut counts = Vec::new();
    for round in 0..ROUNDS {
        let inputs: Vec<Input> = (0..PER_ROUND)
            .map(|n| Input::new(&format!("evt_{round}_{n}"), None, &["ep_a", "ep_b"]))
            .collect();
        let copies: Vec<Input> = (0..PER_ROUND)
            .map(|n| Input::new(&format!("evt_{round}_{n}"), None, &["ep_a"]))
            .collect();
        let mut originals = Vec::new();
        let mut duplicates = Vec::new();
        // The copy of event n is queued after the original of n + PER_ROUND / 2.
        for (n, input) in inputs.iter().enumerate() {
            originals.push(writer.ingest(input.event.clone(), input.deliveries.clone()));
            if let Some(copy) = n.checked_sub(PER_ROUND / 2).map(|m| &copies[m]) {
                duplicates.push(writer.ingest(copy.event.clone(), copy.deliveries.clone()));
            }
        }
        for copy in &copies[PER_ROUND / 2..] {
            duplicates.push(writer.ingest(copy.event.clone(), copy.deliveries.clone()));
        }
        pairs.push((inputs, copies, originals, duplicates));
        counts.push(writer.call(count_events));
    }

    let mut stored_deliveries = Vec::new();
    for (round, (inputs, copies, originals, duplicates)) in pairs.into_iter().enumerate() {
        let originals = join_all(originals).await;
        let duplicates = join_all(duplicates).await;
        for ((input, copy), answers) in inputs
            .iter()
            .zip(&copies)
            .zip(originals.into_iter().zip(duplicates))
        {
            let id = &input.event.id;
            let answers = match answers {
                (Ok(original), Ok(duplicate)) => (original, duplicate),
                other => panic!("{id} on {backend}: an ingestion failed: {other:?}"),
            };
            // Either may come first: both were in flight together.
            let written = match answers {
                (
                    Ingested::New {
                        deliveries: written,
                    },
                    Ingested::Duplicate {
                        event_id,
                        deliveries,
                    },
                ) => {
                    let delivery_ids = ids_written(written);
                    assert_eq!(delivery_ids, ids_of(input), "{id} on {backend}");
                    assert_eq!(
                        (&event_id, deliveries),
                        (id, 2),
                        "copy of {id} on {backend}"
                    );
                    delivery_ids
                }
                (
                    Ingested::Duplicate {
                        event_id,
                        deliveries,
                    },
                    Ingested::New {
                        deliveries: written,
                    },
                ) => {
                    let delivery_ids = ids_written(written);
                    assert_eq!(delivery_ids, ids_of(copy), "copy of {id} on {backend}");
                    assert_eq!((&event_id, deliveries), (id, 1), "{id} on {backend}");
                    delivery_ids
                }
                other => panic!("{id} in round {round} on {backend}: {other:?}"),
            };
            stored_deliveries.extend(written);
        }
    }
    let counted: Vec<Result<i64, StoreError>> = join_all(counts).await;
    for (round, counted) in counted.into_iter().enumerate() {
        assert_eq!(
            counted.expect("count events"),
            i64::try_from((round + 1) * PER_ROUND).expect("a small count"),
            "the call after round {round} on {backend} sees exactly the events queued before it"
        );
    }

    let mut stored: Vec<String> =
        hookrelay::dispatch!(&mut db, c => delivery_table::table.select(delivery_table::id).load(c))
            .expect("stored deliveries");
    stored_deliveries.sort_unstable();
    stored.sort_unstable();
    assert_eq!(
        stored, stored_deliveries,
        "every answered delivery is stored, and only those, on {backend}"
    );
}

/// The lanes close at shutdown while handles remain (the HTTP server's
/// workers keep theirs): work queued before is written, then the lanes end
/// and later work is refused instead of waiting for ever.
async fn closed_lanes_write_what_was_queued_and_end_while_handles_remain(test_db: TestDb) {
    let (store, _db) = open_with_endpoints(&test_db, &[]);
    let (writer, lanes) =
        Writer::start(&store, MAX_LANES, detached_metrics()).expect("start the writer");
    let queued: Vec<_> = (0..50i32).map(|n| writer.call(move |_| Ok(n))).collect();
    // A guard against a hang, not a measure of speed.
    actix_rt::time::timeout(DELIVERY_TIMEOUT, lanes.close())
        .await
        .expect("the lanes end once closed");
    let answers: Vec<i32> = join_all(queued)
        .await
        .into_iter()
        .map(|answer| answer.expect("work queued before the close is written"))
        .collect();
    assert_eq!(answers, (0..50).collect::<Vec<_>>());
    assert!(!writer.is_healthy());
    let refused = writer.call(|_| Ok(())).await;
    assert!(
        matches!(refused, Err(StoreError::WriterGone)),
        "{refused:?}"
    );
}

/// An application dropped without a shutdown (as the tests drop theirs)
/// drops its lanes: they end although handles remain.
async fn lanes_dropped_with_the_application_end_while_handles_remain(test_db: TestDb) {
    let (store, _db) = open_with_endpoints(&test_db, &[]);
    let (writer, lanes) =
        Writer::start(&store, MAX_LANES, detached_metrics()).expect("start the writer");
    writer
        .call(|_| Ok(()))
        .await
        .expect("the writer works before");
    drop(lanes);
    wait_until(DELIVERY_TIMEOUT, || async {
        match writer.call(|_| Ok(())).await {
            Err(StoreError::WriterGone) => Ok(()),
            other => Err(format!("the lanes still answer: {other:?}")),
        }
    })
    .await;
    assert!(!writer.is_healthy());
}

/// Writer metrics in a registry of their own, which no one scrapes.
fn detached_metrics() -> hookrelay::metrics::WriterMetrics {
    hookrelay::metrics::Metrics::new(Default::default())
        .expect("metrics")
        .writer
        .clone()
}
