//! Events: appends, optimistic concurrency, reads and gap-free subscriptions.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use syros_engine::{
    Direction, Engine, ErrorKind, EventInput, ExpectedVersion, RecordedEvent, Result,
    SubscriptionStart, SubscriptionTarget,
};
use tokio::sync::mpsc::Receiver;

use super::{expect_kind, unique, within, Harness};

fn event(event_type: &str, data: serde_json::Value) -> EventInput {
    EventInput {
        event_id: String::new(),
        event_type: event_type.to_string(),
        data: data.to_string(),
        metadata: String::new(),
    }
}

fn numbered(n: usize) -> EventInput {
    event("Numbered", serde_json::json!({ "n": n }))
}

fn number_of(e: &RecordedEvent) -> u64 {
    let data: serde_json::Value = serde_json::from_str(&e.data).expect("stored data is JSON");
    data["n"].as_u64().expect("numbered event")
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

async fn read(e: &Engine, stream: &str) -> Vec<RecordedEvent> {
    e.events
        .read_stream(stream, None, Direction::Forwards, 10_000)
        .await
        .unwrap()
        .events
}

/// The next item of a subscription, which must be an event and arrive within 10 s.
async fn next(rx: &mut Receiver<Result<RecordedEvent>>) -> RecordedEvent {
    match within(10, "subscription", rx.recv()).await {
        Some(Ok(event)) => event,
        Some(Err(err)) => panic!("subscription failed: {err}"),
        None => panic!("subscription ended"),
    }
}

/// Nothing more arrives within a short while.
async fn quiet(rx: &mut Receiver<Result<RecordedEvent>>, keep: impl Fn(&RecordedEvent) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) => return,
            Ok(Some(Ok(e))) if !keep(&e) => continue,
            Ok(other) => panic!("unexpected subscription item: {other:?}"),
        }
    }
}

pub async fn append_checks_expected_version<H: Harness>(h: H) {
    let e = h.engine();
    let s = unique("stream");
    let pair = unique("pair");

    let one = e
        .events
        .append(&s, vec![numbered(0)], ExpectedVersion::NoStream)
        .await
        .unwrap();
    assert_eq!(one.last_version, 0);
    assert_eq!(one.first_position, one.last_position);
    assert!(one.first_position > 0);

    let two = e
        .events
        .append(
            &pair,
            vec![numbered(0), numbered(1)],
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    assert_eq!(two.last_version, 1);
    assert_eq!(two.last_position, two.first_position + 1);
    assert!(two.first_position > one.last_position);
    let stored = read(&e, &pair).await;
    assert_eq!(versions(&stored), vec![0, 1]);
    assert_eq!(
        stored.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        vec![two.first_position, two.last_position]
    );

    let err = expect_kind(
        e.events
            .append(&s, vec![numbered(1)], ExpectedVersion::NoStream)
            .await,
        ErrorKind::VersionConflict,
    );
    assert_eq!(
        err.details.get("expected_version").map(String::as_str),
        Some("no_stream")
    );
    assert_eq!(
        err.details.get("actual_version").map(String::as_str),
        Some("0")
    );

    let before = read(&e, &s).await;
    let err = expect_kind(
        e.events
            .append(&s, vec![numbered(1)], ExpectedVersion::Exact(5))
            .await,
        ErrorKind::VersionConflict,
    );
    assert_eq!(
        err.details.get("expected_version").map(String::as_str),
        Some("5")
    );
    assert_eq!(
        err.details.get("actual_version").map(String::as_str),
        Some("0")
    );
    assert!(!err.retryable());
    assert_eq!(
        read(&e, &s).await,
        before,
        "a conflicting append changed the stream"
    );

    let err = expect_kind(
        e.events
            .append(
                &unique("missing"),
                vec![numbered(0)],
                ExpectedVersion::Exact(0),
            )
            .await,
        ErrorKind::VersionConflict,
    );
    assert_eq!(
        err.details.get("actual_version").map(String::as_str),
        Some("no_stream")
    );

    let exact = e
        .events
        .append(&s, vec![numbered(1)], ExpectedVersion::Exact(0))
        .await
        .unwrap();
    assert_eq!(exact.last_version, 1);
    let any = e
        .events
        .append(&s, vec![numbered(2), numbered(3)], ExpectedVersion::Any)
        .await
        .unwrap();
    assert_eq!(any.last_version, 3);
    assert_eq!(any.last_position, any.first_position + 1);
    let any_new = e
        .events
        .append(&unique("any"), vec![numbered(0)], ExpectedVersion::Any)
        .await;
    assert_eq!(any_new.unwrap().last_version, 0);

    // What was appended is what is read, with the ids and metadata given.
    let with_meta = EventInput {
        event_id: unique("id"),
        event_type: "Tagged".to_string(),
        data: r#"{"k":[1,2,{"x":null}]}"#.to_string(),
        metadata: r#"{"trace":"abc"}"#.to_string(),
    };
    e.events
        .append(&s, vec![with_meta.clone()], ExpectedVersion::Exact(3))
        .await
        .unwrap();
    let all = read(&e, &s).await;
    assert_eq!(versions(&all), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        all.iter().map(number_of).take(4).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(all
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    assert!(all
        .iter()
        .all(|ev| ev.stream == s && !ev.event_id.is_empty()));
    assert_eq!(all[0].event_type, "Numbered");
    assert_eq!(all[0].metadata, None);
    let last = &all[4];
    assert_eq!(last.event_id, with_meta.event_id);
    assert_eq!(last.event_type, "Tagged");
    assert_eq!(last.data, with_meta.data);
    assert_eq!(last.metadata.as_deref(), Some(with_meta.metadata.as_str()));
    assert!(last.created_at_ms > 0);
    // Generated ids are distinct.
    let ids: HashSet<&str> = all.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
}

pub async fn rejected_batches_store_nothing<H: Harness>(h: H) {
    let e = h.engine();
    let fresh = unique("fresh");
    let existing = unique("existing");
    e.events
        .append(&existing, vec![numbered(0)], ExpectedVersion::Any)
        .await
        .unwrap();
    let before = read(&e, &existing).await;

    let bad_data = EventInput {
        data: "{not json".to_string(),
        ..numbered(2)
    };
    let bad_meta = EventInput {
        metadata: "{\"open\": ".to_string(),
        ..numbered(2)
    };
    let empty_type = EventInput {
        event_type: String::new(),
        ..numbered(2)
    };
    let empty_data = EventInput {
        data: String::new(),
        ..numbered(2)
    };
    for stream in [&fresh, &existing] {
        for bad in [&bad_data, &bad_meta, &empty_type, &empty_data] {
            let batch = vec![numbered(0), numbered(1), bad.clone(), numbered(3)];
            expect_kind(
                e.events.append(stream, batch, ExpectedVersion::Any).await,
                ErrorKind::InvalidArgument,
            );
        }
        expect_kind(
            e.events
                .append(stream, Vec::new(), ExpectedVersion::Any)
                .await,
            ErrorKind::InvalidArgument,
        );
    }
    expect_kind(
        e.events
            .append("", vec![numbered(0)], ExpectedVersion::Any)
            .await,
        ErrorKind::InvalidArgument,
    );

    let slice = e
        .events
        .read_stream(&fresh, None, Direction::Forwards, 0)
        .await
        .unwrap();
    assert!(slice.events.is_empty(), "a rejected batch stored events");
    assert_eq!(slice.last_version, None);
    assert_eq!(read(&e, &existing).await, before);
    // The stream continues where it was.
    let next = e
        .events
        .append(&existing, vec![numbered(1)], ExpectedVersion::Exact(0))
        .await;
    assert_eq!(next.unwrap().last_version, 1);
}

pub async fn read_stream_pages_both_ways<H: Harness>(h: H) {
    let e = h.engine();
    let s = unique("pages");
    e.events
        .append(
            &s,
            (0..10).map(numbered).collect(),
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();

    let page = e
        .events
        .read_stream(&s, Some(3), Direction::Forwards, 4)
        .await
        .unwrap();
    assert_eq!(versions(&page.events), vec![3, 4, 5, 6]);
    assert_eq!(
        page.events.iter().map(number_of).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    assert_eq!(page.last_version, Some(9));

    let back = e
        .events
        .read_stream(&s, None, Direction::Backwards, 3)
        .await
        .unwrap();
    assert_eq!(versions(&back.events), vec![9, 8, 7]);
    assert_eq!(back.last_version, Some(9));

    let back_from = e
        .events
        .read_stream(&s, Some(4), Direction::Backwards, 0)
        .await
        .unwrap();
    assert_eq!(versions(&back_from.events), vec![4, 3, 2, 1, 0]);

    let all = e
        .events
        .read_stream(&s, None, Direction::Forwards, 0)
        .await
        .unwrap();
    assert_eq!(versions(&all.events), (0..10).collect::<Vec<_>>());

    let past_end = e
        .events
        .read_stream(&s, Some(10), Direction::Forwards, 5)
        .await
        .unwrap();
    assert!(past_end.events.is_empty());
    assert_eq!(past_end.last_version, Some(9));

    let missing = e
        .events
        .read_stream(&unique("missing"), None, Direction::Forwards, 0)
        .await
        .unwrap();
    assert!(missing.events.is_empty());
    assert_eq!(missing.last_version, None);
    let missing_back = e
        .events
        .read_stream(&unique("missing"), None, Direction::Backwards, 0)
        .await
        .unwrap();
    assert!(missing_back.events.is_empty());
    assert_eq!(missing_back.last_version, None);

    expect_kind(
        e.events
            .read_stream(&s, None, Direction::Forwards, 10_001)
            .await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        e.events.read_stream("", None, Direction::Forwards, 0).await,
        ErrorKind::InvalidArgument,
    );
}

pub async fn read_all_in_global_order<H: Harness>(h: H) {
    let e = h.engine();
    let a = unique("all-a");
    let b = unique("all-b");
    // Interleave: a0 b0 a1 b1 b2 a2 a3
    let plan: [(&str, usize); 5] = [(&a, 1), (&b, 1), (&a, 1), (&b, 2), (&a, 2)];
    let mut expected = Vec::new();
    let mut first = None;
    let mut last = 0;
    let mut next_version = std::collections::HashMap::new();
    for (stream, count) in plan {
        let v = next_version.entry(stream).or_insert(0u64);
        let batch = (0..count).map(|i| numbered(*v as usize + i)).collect();
        let r = e
            .events
            .append(stream, batch, ExpectedVersion::Any)
            .await
            .unwrap();
        first.get_or_insert(r.first_position);
        last = r.last_position;
        for _ in 0..count {
            expected.push((stream.to_string(), *v));
            *v += 1;
        }
    }
    let first = first.unwrap();
    let ours = |events: &[RecordedEvent]| {
        events
            .iter()
            .filter(|ev| ev.stream == a || ev.stream == b)
            .map(|ev| (ev.stream.clone(), ev.version))
            .collect::<Vec<_>>()
    };

    let forwards = e
        .events
        .read_all(Some(first), Direction::Forwards, 10_000)
        .await
        .unwrap();
    assert_eq!(forwards.events[0].global_position, first);
    assert!(forwards
        .events
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    assert_eq!(ours(&forwards.events), expected);
    assert!(forwards.last_position >= last);

    let backwards = e
        .events
        .read_all(Some(last), Direction::Backwards, 10_000)
        .await
        .unwrap();
    assert_eq!(backwards.events[0].global_position, last);
    assert!(backwards
        .events
        .windows(2)
        .all(|w| w[0].global_position > w[1].global_position));
    let mut reversed = expected.clone();
    reversed.reverse();
    let mine = ours(&backwards.events);
    assert_eq!(&mine[..reversed.len()], &reversed[..]);
    assert!(
        mine.len() == reversed.len(),
        "events before the test's first position were ours"
    );

    // A page starting inside the run.
    let page = e
        .events
        .read_all(Some(first + 1), Direction::Forwards, 2)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2);
    assert!(page.events[0].global_position > first);

    // From the end.
    let end = e
        .events
        .read_all(None, Direction::Backwards, 1)
        .await
        .unwrap();
    assert_eq!(end.events.len(), 1);
    assert!(end.events[0].global_position >= last);
    assert!(end.last_position >= end.events[0].global_position);

    expect_kind(
        e.events.read_all(None, Direction::Forwards, 10_001).await,
        ErrorKind::InvalidArgument,
    );

    // A page holds as many events as asked for when that many exist.
    let big = unique("all-big");
    let r = e
        .events
        .append(
            &big,
            (0..600).map(numbered).collect(),
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let page = e
        .events
        .read_all(Some(r.first_position), Direction::Forwards, 600)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 600);
    assert_eq!(page.events[0].global_position, r.first_position);
    let page = e
        .events
        .read_all(Some(r.last_position), Direction::Backwards, 600)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 600);
    assert_eq!(page.events[0].global_position, r.last_position);
}

pub async fn concurrent_appends_any_have_no_gaps<H: Harness>(h: H) {
    const TASKS: usize = 8;
    const EACH: usize = 20;
    let e = h.engine();
    let s = unique("concurrent");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (e, s) = (e.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..EACH {
                let r = e
                    .events
                    .append(&s, vec![numbered(t * 1000 + i)], ExpectedVersion::Any)
                    .await
                    .unwrap();
                versions.push(r.last_version);
            }
            versions
        }));
    }
    let mut returned = Vec::new();
    for task in tasks {
        returned.extend(within(60, "appender", task).await.unwrap());
    }
    returned.sort();
    let total = (TASKS * EACH) as u64;
    assert_eq!(returned, (0..total).collect::<Vec<_>>(), "append results");

    let stored = read(&e, &s).await;
    assert_eq!(versions(&stored), (0..total).collect::<Vec<_>>());
    assert!(stored
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    let numbers: Vec<u64> = stored.iter().map(number_of).collect();
    let distinct: HashSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), numbers.len(), "duplicated events");
    // Each task's events are in its own order.
    for t in 0..TASKS as u64 {
        let mine: Vec<u64> = numbers.iter().copied().filter(|n| n / 1000 == t).collect();
        assert_eq!(
            mine,
            (0..EACH as u64).map(|i| t * 1000 + i).collect::<Vec<_>>()
        );
    }
}

pub async fn concurrent_batches_stay_contiguous<H: Harness>(h: H) {
    const TASKS: usize = 4;
    const BATCHES: usize = 10;
    const SIZE: usize = 5;
    let e = h.engine();
    let s = unique("batches");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (e, s) = (e.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for b in 0..BATCHES {
                let first = t * 1000 + b * SIZE;
                let batch = (first..first + SIZE).map(numbered).collect();
                let r = e
                    .events
                    .append(&s, batch, ExpectedVersion::Any)
                    .await
                    .unwrap();
                results.push((first as u64, r));
            }
            results
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(within(60, "batch appender", task).await.unwrap());
    }
    let stored = read(&e, &s).await;
    let total = (TASKS * BATCHES * SIZE) as u64;
    assert_eq!(versions(&stored), (0..total).collect::<Vec<_>>());
    for (first, r) in results {
        // The batch occupies SIZE consecutive versions and positions, in its own order.
        let start = (r.last_version + 1 - SIZE as u64) as usize;
        let batch = &stored[start..start + SIZE];
        assert_eq!(
            batch.iter().map(number_of).collect::<Vec<_>>(),
            (first..first + SIZE as u64).collect::<Vec<_>>(),
            "a batch was interleaved with another append"
        );
        assert_eq!(batch[0].global_position, r.first_position);
        assert_eq!(batch[SIZE - 1].global_position, r.last_position);
        assert_eq!(r.last_position - r.first_position, SIZE as u64 - 1);
    }
}

/// Appends to many streams at once: together their global positions are gap-free and
/// unique, each append's positions consecutive and in its events' order, and read_all returns
/// exactly them in that order.
pub async fn concurrent_streams_share_gap_free_positions<H: Harness>(h: H) {
    const TASKS: usize = 8;
    const BATCHES: usize = 10;
    const SIZE: usize = 3;
    let e = h.engine();
    let prefix = unique("spread");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (e, s) = (e.clone(), format!("{prefix}-{t}"));
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut expected = ExpectedVersion::NoStream;
            for b in 0..BATCHES {
                let first = t * 1000 + b * SIZE;
                let batch = (first..first + SIZE).map(numbered).collect();
                let r = e.events.append(&s, batch, expected).await.unwrap();
                assert_eq!(r.last_version, ((b + 1) * SIZE - 1) as u64);
                expected = ExpectedVersion::Exact(r.last_version);
                results.push((first as u64, r));
            }
            results
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.extend(within(60, "stream appender", task).await.unwrap());
    }
    results.sort_by_key(|(_, r)| r.first_position);
    for pair in results.windows(2) {
        assert_eq!(
            pair[1].1.first_position,
            pair[0].1.last_position + 1,
            "positions between two appends are gap-free and not shared"
        );
    }
    let from = results[0].1.first_position;
    let all = e
        .events
        .read_all(Some(from), Direction::Forwards, 10_000)
        .await
        .unwrap()
        .events;
    assert_eq!(all.len(), TASKS * BATCHES * SIZE);
    let mut stored = all.iter();
    for (first, r) in &results {
        for (offset, position) in (r.first_position..=r.last_position).enumerate() {
            let event = stored.next().unwrap();
            assert_eq!(event.global_position, position);
            assert_eq!(
                number_of(event),
                first + offset as u64,
                "the batch's own order"
            );
        }
    }
}

pub async fn optimistic_concurrency_one_winner_per_version<H: Harness>(h: H) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 10;
    let e = h.engine();
    let s = unique("optimistic");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (e, s) = (e.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let mut wins = Vec::new();
            let mut conflicts = 0;
            for round in 0..ROUNDS {
                let last = e
                    .events
                    .read_stream(&s, None, Direction::Backwards, 1)
                    .await
                    .unwrap()
                    .last_version;
                let expected = last.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                let input = numbered(t * 1000 + round);
                match e.events.append(&s, vec![input], expected).await {
                    Ok(r) => {
                        assert_eq!(r.last_version, last.map_or(0, |v| v + 1));
                        wins.push((r.last_version, (t * 1000 + round) as u64));
                    }
                    Err(err) if err.kind == ErrorKind::VersionConflict => conflicts += 1,
                    Err(err) => panic!("unexpected error: {err}"),
                }
                tokio::task::yield_now().await;
            }
            (wins, conflicts)
        }));
    }
    let mut wins = Vec::new();
    for task in tasks {
        let (w, _conflicts) = within(60, "optimistic appender", task).await.unwrap();
        wins.extend(w);
    }
    assert!(!wins.is_empty());
    wins.sort();
    let won_versions: Vec<u64> = wins.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        won_versions,
        (0..wins.len() as u64).collect::<Vec<_>>(),
        "exactly one append must win each version"
    );
    let stored = read(&e, &s).await;
    let slice = e
        .events
        .read_stream(&s, None, Direction::Backwards, 1)
        .await
        .unwrap();
    assert_eq!(slice.last_version, Some(wins.len() as u64 - 1));
    assert_eq!(versions(&stored), won_versions);
    // The stored event at each version is the winner's.
    let stored_numbers: Vec<u64> = stored.iter().map(number_of).collect();
    assert_eq!(
        stored_numbers,
        wins.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    );
}

pub async fn subscribe_stream_catches_up_then_follows<H: Harness>(h: H) {
    let e = h.engine();
    let s = unique("follow");
    e.events
        .append(
            &s,
            (0..3).map(numbered).collect(),
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let mut rx = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(s.clone()),
            SubscriptionStart::From(0),
        )
        .await
        .unwrap();
    let writer = {
        let (e, s) = (e.clone(), s.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for n in 3..8 {
                e.events
                    .append(&s, vec![numbered(n)], ExpectedVersion::Any)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let mut got = Vec::new();
    for _ in 0..8 {
        got.push(next(&mut rx).await);
    }
    within(10, "writer", writer).await.unwrap();
    assert_eq!(versions(&got), (0..8).collect::<Vec<_>>());
    assert_eq!(
        got.iter().map(number_of).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>()
    );
    assert!(got.iter().all(|ev| ev.stream == s));
    assert_eq!(
        got,
        read(&e, &s).await,
        "delivered events differ from stored ones"
    );
    quiet(&mut rx, |_| true).await;

    // Other streams are not delivered; a later append to ours is.
    e.events
        .append(&unique("other"), vec![numbered(0)], ExpectedVersion::Any)
        .await
        .unwrap();
    e.events
        .append(&s, vec![numbered(8)], ExpectedVersion::Exact(7))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.version, 8);

    // A subscription from the middle starts there.
    let mut mid = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(s.clone()),
            SubscriptionStart::From(6),
        )
        .await
        .unwrap();
    assert_eq!(next(&mut mid).await.version, 6);
    assert_eq!(next(&mut mid).await.version, 7);
    assert_eq!(next(&mut mid).await.version, 8);
    quiet(&mut mid, |_| true).await;

    expect_kind(
        e.events
            .subscribe(
                SubscriptionTarget::Stream(String::new()),
                SubscriptionStart::From(0),
            )
            .await,
        ErrorKind::InvalidArgument,
    );
}

pub async fn subscribe_all_in_global_order<H: Harness>(h: H) {
    let e = h.engine();
    let (a, b, c) = (unique("sub-a"), unique("sub-b"), unique("sub-c"));
    let start = e
        .events
        .append(&a, vec![numbered(0)], ExpectedVersion::Any)
        .await
        .unwrap();
    e.events
        .append(&b, vec![numbered(1), numbered(2)], ExpectedVersion::Any)
        .await
        .unwrap();

    let mut rx = e
        .events
        .subscribe(
            SubscriptionTarget::All,
            SubscriptionStart::From(start.first_position),
        )
        .await
        .unwrap();
    let writer = {
        let (e, a, b, c) = (e.clone(), a.clone(), b.clone(), c.clone());
        tokio::spawn(async move {
            for (n, stream) in [(3, &c), (4, &a), (5, &b), (6, &c)] {
                e.events
                    .append(stream, vec![numbered(n)], ExpectedVersion::Any)
                    .await
                    .unwrap();
            }
        })
    };
    let mine = |ev: &RecordedEvent| ev.stream == a || ev.stream == b || ev.stream == c;
    let mut got = Vec::new();
    let mut last_position = 0;
    while got.len() < 7 {
        let ev = next(&mut rx).await;
        assert!(ev.global_position >= start.first_position);
        assert!(ev.global_position > last_position, "out of global order");
        last_position = ev.global_position;
        if mine(&ev) {
            got.push(ev);
        }
    }
    within(10, "writer", writer).await.unwrap();
    assert_eq!(
        got.iter().map(number_of).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    let streams: Vec<&str> = got.iter().map(|e| e.stream.as_str()).collect();
    assert_eq!(streams, vec![&a, &b, &b, &c, &a, &b, &c]);
    quiet(&mut rx, |ev| mine(ev)).await;
}

pub async fn subscribe_from_end_gets_only_new_events<H: Harness>(h: H) {
    let e = h.engine();
    let s = unique("end");
    let old = e
        .events
        .append(
            &s,
            (0..3).map(numbered).collect(),
            ExpectedVersion::NoStream,
        )
        .await
        .unwrap();
    let mut stream_rx = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(s.clone()),
            SubscriptionStart::End,
        )
        .await
        .unwrap();
    let mut all_rx = e
        .events
        .subscribe(SubscriptionTarget::All, SubscriptionStart::End)
        .await
        .unwrap();
    let empty = unique("end-empty");
    let mut empty_rx = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(empty.clone()),
            SubscriptionStart::End,
        )
        .await
        .unwrap();

    e.events
        .append(
            &s,
            vec![numbered(3), numbered(4)],
            ExpectedVersion::Exact(2),
        )
        .await
        .unwrap();
    e.events
        .append(&empty, vec![numbered(0)], ExpectedVersion::NoStream)
        .await
        .unwrap();

    let got = [next(&mut stream_rx).await, next(&mut stream_rx).await];
    assert_eq!(versions(&got), vec![3, 4]);
    quiet(&mut stream_rx, |_| true).await;

    let mut mine = Vec::new();
    while mine.len() < 3 {
        let ev = next(&mut all_rx).await;
        assert!(
            ev.global_position > old.last_position,
            "an old event was delivered: {ev:?}"
        );
        if ev.stream == s || ev.stream == empty {
            mine.push((ev.stream.clone(), ev.version));
        }
    }
    assert_eq!(
        mine,
        vec![(s.clone(), 3), (s.clone(), 4), (empty.clone(), 0)]
    );

    let first = next(&mut empty_rx).await;
    assert_eq!((first.stream.as_str(), first.version), (empty.as_str(), 0));
    quiet(&mut empty_rx, |_| true).await;
}

pub async fn subscription_under_concurrent_writer_has_no_gaps<H: Harness>(h: H) {
    const BEFORE: usize = 600;
    const DURING: usize = 300;
    let e = h.engine();
    let s = unique("catch-up");
    for chunk in 0..(BEFORE / 100) {
        let batch = (chunk * 100..(chunk + 1) * 100).map(numbered).collect();
        e.events
            .append(&s, batch, ExpectedVersion::Any)
            .await
            .unwrap();
    }
    let first_position = e
        .events
        .read_stream(&s, Some(0), Direction::Forwards, 1)
        .await
        .unwrap()
        .events[0]
        .global_position;
    let mut stream_rx = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(s.clone()),
            SubscriptionStart::From(0),
        )
        .await
        .unwrap();
    let mut all_rx = e
        .events
        .subscribe(
            SubscriptionTarget::All,
            SubscriptionStart::From(first_position),
        )
        .await
        .unwrap();
    let writer = {
        let (e, s) = (e.clone(), s.clone());
        tokio::spawn(async move {
            let mut n = BEFORE;
            while n < BEFORE + DURING {
                // Mostly single events, sometimes small batches.
                let size = if n % 7 == 1 {
                    3.min(BEFORE + DURING - n)
                } else {
                    1
                };
                let batch = (n..n + size).map(numbered).collect();
                e.events
                    .append(&s, batch, ExpectedVersion::Any)
                    .await
                    .unwrap();
                n += size;
            }
        })
    };
    let total = (BEFORE + DURING) as u64;
    let mut got = Vec::new();
    while (got.len() as u64) < total {
        let ev = next(&mut stream_rx).await;
        // A slow consumer at first, so the buffer fills while the writer runs.
        if got.len() < 300 && got.len() % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        got.push(ev);
    }
    within(60, "writer", writer).await.unwrap();
    assert_eq!(
        versions(&got),
        (0..total).collect::<Vec<_>>(),
        "gap or duplicate"
    );
    assert_eq!(
        got.iter().map(number_of).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    quiet(&mut stream_rx, |_| true).await;

    let mut from_all = Vec::new();
    let mut last_position = 0;
    while (from_all.len() as u64) < total {
        let ev = next(&mut all_rx).await;
        assert!(ev.global_position > last_position, "out of global order");
        last_position = ev.global_position;
        if ev.stream == s {
            from_all.push(ev.version);
        }
    }
    assert_eq!(
        from_all,
        (0..total).collect::<Vec<_>>(),
        "gap or duplicate (all streams)"
    );
    quiet(&mut all_rx, |ev| ev.stream == s).await;
}

pub async fn events_survive_restart<H: Harness>(mut h: H) {
    let s = unique("durable");
    let (before, appended) = {
        let e = h.engine();
        let r = e
            .events
            .append(
                &s,
                (0..5).map(numbered).collect(),
                ExpectedVersion::NoStream,
            )
            .await
            .unwrap();
        (read(&e, &s).await, r)
    };
    assert_eq!(before.len(), 5);
    let e = h.restart().await;

    assert_eq!(read(&e, &s).await, before);
    let all = e
        .events
        .read_all(Some(appended.first_position), Direction::Forwards, 1_000)
        .await
        .unwrap();
    let mine: Vec<RecordedEvent> = all.events.into_iter().filter(|ev| ev.stream == s).collect();
    assert_eq!(mine, before);
    expect_kind(
        e.events
            .append(&s, vec![numbered(5)], ExpectedVersion::Exact(3))
            .await,
        ErrorKind::VersionConflict,
    );
    let next_append = e
        .events
        .append(&s, vec![numbered(5)], ExpectedVersion::Exact(4))
        .await
        .unwrap();
    assert_eq!(next_append.last_version, 5);
    assert!(
        next_append.first_position > appended.last_position,
        "global position went backwards after restart: {next_append:?} vs {appended:?}"
    );

    // A subscription on the new engine sees old and new events.
    let mut rx = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(s.clone()),
            SubscriptionStart::From(0),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(next(&mut rx).await.version);
    }
    assert_eq!(got, (0..6).collect::<Vec<_>>());
    e.events
        .append(&s, vec![numbered(6)], ExpectedVersion::Exact(5))
        .await
        .unwrap();
    assert_eq!(next(&mut rx).await.version, 6);
}

pub async fn shutdown_ends_subscriptions<H: Harness>(h: H) {
    let e: Arc<Engine> = h.engine();
    let s = unique("shutdown");
    e.events
        .append(&s, vec![numbered(0)], ExpectedVersion::Any)
        .await
        .unwrap();
    let mut stream_rx = e
        .events
        .subscribe(
            SubscriptionTarget::Stream(s.clone()),
            SubscriptionStart::From(0),
        )
        .await
        .unwrap();
    let mut all_rx = e
        .events
        .subscribe(SubscriptionTarget::All, SubscriptionStart::End)
        .await
        .unwrap();
    assert_eq!(next(&mut stream_rx).await.version, 0);
    // Let both subscriptions reach their live wait.
    tokio::time::sleep(Duration::from_millis(100)).await;

    e.shutdown();
    for rx in [&mut stream_rx, &mut all_rx] {
        loop {
            match within(5, "subscription end", rx.recv()).await {
                // An event appended concurrently by another test on a shared store.
                Some(Ok(ev)) => assert_ne!(ev.stream, s, "unexpected event {ev:?}"),
                Some(Err(err)) => {
                    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
                    assert!(err.retryable());
                    break;
                }
                None => panic!("the subscription ended without an Unavailable error"),
            }
        }
        assert!(within(5, "subscription close", rx.recv()).await.is_none());
    }
}

fn with_id(id: &str, n: usize) -> EventInput {
    EventInput {
        event_id: id.to_string(),
        ..numbered(n)
    }
}

/// Issue 11 item 6, the engine's half: a repeat of an append that committed (its answer lost)
/// is acknowledged again with the same result, by its event ids, instead of conflicting (with
/// `NoStream`/`Exact`) or storing the events twice (with `Any`). Other ids still conflict.
pub async fn repeated_appends_are_acknowledged_not_duplicated<H: Harness>(h: H) {
    let e = h.engine();
    let s = unique("repeat");
    let (a, b, c, d, x) = (
        unique("a"),
        unique("b"),
        unique("c"),
        unique("d"),
        unique("x"),
    );
    let append = |events: Vec<EventInput>, expected| {
        let e = e.clone();
        let s = s.clone();
        async move { e.events.append(&s, events, expected).await }
    };

    let first = append(
        vec![with_id(&a, 0), with_id(&b, 1)],
        ExpectedVersion::NoStream,
    )
    .await
    .unwrap();
    let again = append(
        vec![with_id(&a, 0), with_id(&b, 1)],
        ExpectedVersion::NoStream,
    )
    .await
    .expect("a repeated NoStream append is acknowledged, not a conflict");
    assert_eq!(again, first);

    let exact = append(vec![with_id(&c, 2)], ExpectedVersion::Exact(1))
        .await
        .unwrap();
    let any = append(vec![with_id(&d, 3)], ExpectedVersion::Any)
        .await
        .unwrap();
    assert_eq!(
        append(vec![with_id(&c, 2)], ExpectedVersion::Exact(1))
            .await
            .expect("a repeated Exact append is acknowledged"),
        exact
    );
    assert_eq!(
        append(vec![with_id(&d, 3)], ExpectedVersion::Any)
            .await
            .expect("a repeated Any append is acknowledged"),
        any
    );
    let stored = read(&e, &s).await;
    assert_eq!(versions(&stored), vec![0, 1, 2, 3], "nothing stored twice");
    assert_eq!(
        stored
            .iter()
            .map(|ev| ev.event_id.clone())
            .collect::<Vec<_>>(),
        vec![a.clone(), b.clone(), c.clone(), d.clone()]
    );

    // Other ids at a taken version, or the right first id with a different batch, conflict.
    expect_kind(
        append(vec![with_id(&x, 9)], ExpectedVersion::Exact(1)).await,
        ErrorKind::VersionConflict,
    );
    expect_kind(
        append(
            vec![with_id(&c, 2), with_id(&x, 9)],
            ExpectedVersion::Exact(1),
        )
        .await,
        ErrorKind::VersionConflict,
    );
    expect_kind(
        append(vec![with_id(&b, 1)], ExpectedVersion::NoStream).await,
        ErrorKind::VersionConflict,
    );
    assert_eq!(read(&e, &s).await.len(), 4, "the conflicts stored nothing");
    // With `Any`, a batch whose ids are not the stream's last events is a new append.
    let later = append(vec![with_id(&x, 4)], ExpectedVersion::Any)
        .await
        .unwrap();
    assert_eq!(later.last_version, 4);
}

/// Issue 11 item 7: appends whose callers give up (the future is dropped, as a gRPC deadline
/// does) while they commit must still wake live subscriptions: every subscriber reaches the
/// stored head within a second, without waiting for another append.
pub async fn cancelled_appends_still_wake_subscribers<H: Harness>(h: H) {
    let e = h.engine();
    let s = unique("cancelled");
    let big = |n: usize| EventInput {
        data: serde_json::json!({ "n": n, "pad": "x".repeat(4000) }).to_string(),
        ..numbered(n)
    };
    let batch = |from: usize| (from..from + 100).map(big).collect::<Vec<_>>();
    e.events
        .append(&s, batch(0), ExpectedVersion::Any)
        .await
        .unwrap();
    let mut subscribers = Vec::new();
    for _ in 0..3 {
        subscribers.push(
            e.events
                .subscribe(
                    SubscriptionTarget::Stream(s.clone()),
                    SubscriptionStart::From(0),
                )
                .await
                .unwrap(),
        );
    }
    let mut seen = [None::<u64>; 3];
    // How long a whole append takes here; the deadlines are drawn around it so that some fall
    // while COMMIT runs.
    let started = std::time::Instant::now();
    e.events
        .append(&s, batch(100), ExpectedVersion::Any)
        .await
        .unwrap();
    let full = started.elapsed();
    let mut cancelled_but_stored = 0;
    let mut rounds = 0;
    let mut fraction = 0.9f64;
    while cancelled_but_stored < 3 {
        rounds += 1;
        assert!(
            rounds <= 400,
            "no append was cancelled after it committed in 400 tries: the test proves nothing"
        );
        let before = read_last_version(&e, &s).await;
        let deadline = full.mul_f64(fraction * (0.8 + 0.4 * fastrand_f64(rounds)));
        let appended = tokio::time::timeout(
            deadline,
            e.events.append(&s, batch(0), ExpectedVersion::Any),
        )
        .await;
        // Let an interrupted COMMIT finish before looking at what is stored.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let after = read_last_version(&e, &s).await;
        if let Ok(result) = &appended {
            let result = result.as_ref().expect("append");
            assert_eq!(
                after, result.last_version,
                "an acknowledged append is what is stored (round {rounds})"
            );
        }
        match (&appended, after > before) {
            (Err(_), true) => cancelled_but_stored += 1,
            // Completed: aim earlier. Cancelled before committing: aim later.
            (Ok(_), _) => fraction *= 0.9,
            (Err(_), false) => fraction = (fraction * 1.05).min(3.0),
        }
        for (rx, seen) in subscribers.iter_mut().zip(seen.iter_mut()) {
            while seen.is_none_or(|v| v < after) {
                match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                    Ok(Some(Ok(event))) => *seen = Some(event.version),
                    Ok(other) => panic!("subscription ended: {other:?}"),
                    Err(_) => panic!(
                        "a subscriber stalled at version {seen:?}; version {after} is stored \
                         (round {rounds}, the append was {})",
                        if appended.is_err() {
                            "cancelled"
                        } else {
                            "completed"
                        }
                    ),
                }
            }
        }
    }
}

async fn read_last_version(e: &Engine, stream: &str) -> u64 {
    e.events
        .read_stream(stream, None, Direction::Backwards, 1)
        .await
        .unwrap()
        .last_version
        .expect("the stream exists")
}

/// A deterministic spread in [0, 1) (no RNG dependency in the suite).
fn fastrand_f64(round: u32) -> f64 {
    f64::from(round.wrapping_mul(2_654_435_761) % 1000) / 1000.0
}
