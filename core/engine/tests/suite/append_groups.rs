//! Group commit of appends, at the store (PostgreSQL: `backend/postgres/append_group.rs`;
//! SQLite: the writer's group commit in `backend/sqlite.rs`). Each test takes a fresh store and
//! must run on a current-thread runtime: appends started together in one `join_all` are then all
//! queued before the group task runs, so they form one group. Nothing is assumed about how the
//! store groups them beyond what each append's answer and the stored events show.

use futures::future::join_all;
use syros_engine::store::{Appended, EventStore};
use syros_engine::{
    AllQuery, AppendResult, Direction, ErrorKind, ExpectedVersion, NewEvent, RecordedEvent,
};

use super::unique;

pub fn events(ids: &[&str]) -> Vec<NewEvent> {
    ids.iter()
        .map(|id| NewEvent {
            event_id: id.to_string(),
            event_type: "Grouped".to_string(),
            data: format!("{{\"id\":\"{id}\"}}"),
            metadata: None,
        })
        .collect()
}

pub async fn everything(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store
        .read_all(&AllQuery {
            from: None,
            direction: Direction::Forwards,
            limit: 10_000,
        })
        .await
        .expect("read all")
        .events
}

pub fn result(last_version: u64, first_position: u64, last_position: u64) -> AppendResult {
    AppendResult {
        last_version,
        first_position,
        last_position,
    }
}

/// One group: an append failing its expected version (another append of the group moved
/// its stream first) is answered alone, every other append commits, positions are gap-free
/// in queue order, an append chained after another of the same stream gets the next
/// versions, and every stream's subscribers and the head are told.
pub async fn a_failed_check_fails_only_its_append(store: &dyn EventStore) {
    let (s1, s2, s3) = (unique("s1"), unique("s2"), unique("s3"));
    store
        .append(&s1, &events(&["first"]), ExpectedVersion::NoStream, 1)
        .await
        .unwrap();
    let mut appended = store.appended();
    let head = store.head();
    let group = [
        (&s1, events(&["a", "b"]), ExpectedVersion::Exact(0)),
        (&s2, events(&["c", "d", "e"]), ExpectedVersion::NoStream),
        (&s1, events(&["x"]), ExpectedVersion::Exact(0)),
        (&s3, events(&["f"]), ExpectedVersion::Any),
        (&s1, events(&["g"]), ExpectedVersion::Exact(2)),
    ];
    let results = join_all(
        group
            .iter()
            .map(|(stream, batch, expected)| store.append(stream, batch, *expected, 2)),
    )
    .await;
    assert_eq!(results[0].as_ref().unwrap(), &result(2, 2, 3));
    assert_eq!(results[1].as_ref().unwrap(), &result(2, 4, 6));
    let conflict = results[2].as_ref().unwrap_err();
    assert_eq!(conflict.kind, ErrorKind::VersionConflict, "{conflict}");
    assert_eq!(results[3].as_ref().unwrap(), &result(0, 7, 7));
    assert_eq!(results[4].as_ref().unwrap(), &result(3, 8, 8));

    let stored = everything(store).await;
    let layout: Vec<(u64, &str, u64, &str)> = stored
        .iter()
        .map(|e| {
            (
                e.global_position,
                e.stream.as_str(),
                e.version,
                e.event_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        layout,
        [
            (1, s1.as_str(), 0, "first"),
            (2, s1.as_str(), 1, "a"),
            (3, s1.as_str(), 2, "b"),
            (4, s2.as_str(), 0, "c"),
            (5, s2.as_str(), 1, "d"),
            (6, s2.as_str(), 2, "e"),
            (7, s3.as_str(), 0, "f"),
            (8, s1.as_str(), 3, "g"),
        ]
    );
    assert_eq!(*head.borrow(), 8);
    let mut told = Vec::new();
    while let Ok(Appended::Stream(stream)) = appended.try_recv() {
        told.push(stream.to_string());
    }
    // (The failed append adds a notice of its own stream: a failed append may have committed.)
    told.sort();
    told.dedup();
    let mut expected = vec![s1.clone(), s2.clone(), s3.clone()];
    expected.sort();
    assert_eq!(told, expected, "every written stream is told");
}

/// A repeat queued while its first attempt waits in the same group (a client retrying
/// early) is not chained after it: it is acknowledged with the first attempt's result,
/// with `NoStream` and with `Any`, and the events are stored once. A later retry of an
/// append that was in a group is acknowledged the same way.
pub async fn a_repeat_of_a_grouped_append_is_acknowledged_once(store: &dyn EventStore) {
    let s = unique("repeat");
    let group = [
        (events(&["a", "b"]), ExpectedVersion::NoStream),
        (events(&["a", "b"]), ExpectedVersion::NoStream),
        (events(&["c"]), ExpectedVersion::Any),
        (events(&["c"]), ExpectedVersion::Any),
    ];
    let results: Vec<AppendResult> = join_all(
        group
            .iter()
            .map(|(batch, expected)| store.append(&s, batch, *expected, 1)),
    )
    .await
    .into_iter()
    .map(|r| r.expect("every attempt is acknowledged"))
    .collect();
    assert_eq!(results[0], result(1, 1, 2));
    assert_eq!(results[1], results[0]);
    assert_eq!(results[2], result(2, 3, 3));
    assert_eq!(results[3], results[2]);
    let again = store
        .append(&s, &events(&["a", "b"]), ExpectedVersion::NoStream, 3)
        .await
        .unwrap();
    assert_eq!(again, results[0]);
    let ids: Vec<String> = everything(store)
        .await
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
}
