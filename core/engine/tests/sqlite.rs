//! The engine suite over the embedded SQLite backend (one database file per test).

mod suite;

use std::path::PathBuf;
use std::sync::Arc;

use syros_engine::{Engine, Limits, Stores};
use tempfile::TempDir;

pub struct SqliteHarness {
    // Field order: the engine goes before the directory holding its file.
    engine: Arc<Engine>,
    path: PathBuf,
    _dir: TempDir,
}

impl SqliteHarness {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("db.sqlite");
        SqliteHarness {
            engine: Self::open(&path).await,
            path,
            _dir: dir,
        }
    }

    pub async fn open(path: &std::path::Path) -> Arc<Engine> {
        let stores = Stores::embedded(path).await.expect("open SQLite store");
        Engine::new(stores, Limits::default())
    }
}

impl suite::Harness for SqliteHarness {
    fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    async fn restart(&mut self) -> Arc<Engine> {
        // Ending subscriptions and dropping the engine drops the old connection pools.
        self.engine.shutdown();
        self.engine = Self::open(&self.path).await;
        self.engine.clone()
    }

    async fn refuse_audit_appends(&self, refuse: bool) {
        let url = format!("sqlite://{}", self.path.display());
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("open the test's database");
        let sql = if refuse {
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON events WHEN NEW.stream LIKE 'saga-%'
             BEGIN SELECT RAISE(ABORT, 'audit append refused'); END"
        } else {
            "DROP TRIGGER refuse_audit"
        };
        sqlx::raw_sql(sql)
            .execute(&pool)
            .await
            .expect("change the trigger");
        pool.close().await;
    }
}

engine_suite!(SqliteHarness::new());

/// Backend-specific tests: they keep the store's single writer connection busy to make a race
/// certain.
mod busy_writer {
    use std::time::Duration;

    use syros_engine::{
        AcquireLock, AcquireOutcome, Direction, Engine, EventInput, ExpectedVersion,
    };

    use super::suite::Harness;
    use super::SqliteHarness;

    fn args(key: &str, owner: &str, ttl_ms: u64, wait_timeout_ms: u64) -> AcquireLock {
        AcquireLock {
            key: key.to_string(),
            owner: owner.to_string(),
            ttl_ms,
            wait_timeout_ms,
            request_id: String::new(),
        }
    }

    fn padding(events: usize) -> Vec<EventInput> {
        let data = serde_json::json!({ "pad": "x".repeat(4_000) }).to_string();
        (0..events)
            .map(|_| EventInput {
                event_type: "Pad".to_string(),
                data: data.clone(),
                ..EventInput::default()
            })
            .collect()
    }

    /// Queue `count` appends of 1000 large events on the single writer connection.
    fn busy_writes(e: &std::sync::Arc<Engine>, count: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..count)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(async move {
                    let stream = format!("pad-{i}");
                    e.events
                        .append(&stream, padding(1_000), ExpectedVersion::Any)
                        .await
                        .unwrap();
                })
            })
            .collect()
    }

    /// A caller whose acquire is dropped (client gone, timeout) while that acquire is handing the
    /// key to the head waiter must not take the head waiter's place down with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_acquire_during_hand_off_keeps_other_waiters() {
        let h = SqliteHarness::new().await;
        let e = h.engine();
        let k = "k";
        let holder = match e.locks.acquire(args(k, "holder", 30_000, 0)).await.unwrap() {
            AcquireOutcome::Acquired(lease) => lease,
            other => panic!("{other:?}"),
        };
        // w1 queues, believing the lease lasts 30 s.
        let w1 = {
            let e = e.clone();
            tokio::spawn(async move { e.locks.acquire(args(k, "w1", 10_000, 10_000)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The holder shortens its lease and lets it lapse: the key is free, w1 still queued.
        e.locks.renew(&holder.lease_id, 100).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Keep the lock writer busy: another connection holds the database's write lock, so
        // the writer waits (busy timeout) until it commits. (Large appends used to do this, but
        // the lock writer got fast enough to finish them within w2's wait.)
        let pool = other_connection(&h).await;
        let mut other = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO meta (name, value) VALUES ('hand_off_test', 1)")
            .execute(&mut *other)
            .await
            .unwrap();

        // w2 arrives, queues behind w1 and hands the free key to w1, which needs the writer;
        // w2's caller gives up meanwhile.
        let w2 = tokio::time::timeout(
            Duration::from_millis(200),
            e.locks.acquire(args(k, "w2", 10_000, 5_000)),
        )
        .await;
        assert!(w2.is_err(), "w2 should still be waiting: {w2:?}");
        assert!(
            !w1.is_finished(),
            "w1 cannot be granted while the writer waits"
        );
        other.commit().await.unwrap();
        pool.close().await;

        // w1 is the only waiter left on a free key: it must get it, promptly.
        let w1 = tokio::time::timeout(Duration::from_secs(5), w1).await;
        let w1_result = format!("{w1:?}");
        let w1_ok = matches!(w1, Ok(Ok(Ok(AcquireOutcome::Acquired(ref l)))) if l.owner == "w1");
        if let Ok(Ok(Ok(AcquireOutcome::Acquired(lease)))) = &w1 {
            e.locks.release(&lease.lease_id).await.unwrap();
        }

        // And hand-off on this key still works afterwards.
        let h2 = match e.locks.acquire(args(k, "h2", 30_000, 0)).await.unwrap() {
            AcquireOutcome::Acquired(lease) => lease,
            other => panic!("{other:?}"),
        };
        let w3 = {
            let e = e.clone();
            tokio::spawn(async move { e.locks.acquire(args(k, "w3", 10_000, 3_000)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        e.locks.release(&h2.lease_id).await.unwrap();
        let w3 = w3.await.unwrap();
        let w3_ok = matches!(w3, Ok(AcquireOutcome::Acquired(ref l)) if l.owner == "w3");

        assert!(
            w1_ok && w3_ok,
            "w1 (head waiter when w2 was cancelled): {w1_result}\n\
             w3 (waiter on the same key later): {w3:?}"
        );
    }

    /// A waiter that times out while a hand-off to it is completing must not leave a lease behind
    /// that nobody knows of (the key would stay blocked for the whole TTL).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timed_out_waiter_leaves_no_lease_behind() {
        let h = SqliteHarness::new().await;
        let e = h.engine();
        // Data for slow reads.
        for _ in 0..4 {
            e.events
                .append("read-pad", padding(1_000), ExpectedVersion::Any)
                .await
                .unwrap();
        }
        let k = "k";
        let holder = match e.locks.acquire(args(k, "holder", 30_000, 0)).await.unwrap() {
            AcquireOutcome::Acquired(lease) => lease,
            other => panic!("{other:?}"),
        };
        let t0 = tokio::time::Instant::now();
        // w waits 1.5 s, believing the holder's lease lasts 30 s.
        let w = {
            let e = e.clone();
            tokio::spawn(async move { e.locks.acquire(args(k, "w", 30_000, 1_500)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The holder's lease lapses silently: the key is free, w still queued.
        e.locks.renew(&holder.lease_id, 100).await.unwrap();

        // Shortly before w's deadline: the writer gets busy, y arrives and hands the key to w
        // (which needs the writer) ...
        tokio::time::sleep_until(t0 + Duration::from_millis(1_000)).await;
        let writes = busy_writes(&e, 8);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let y = {
            let e = e.clone();
            tokio::spawn(async move { e.locks.acquire(args(k, "y", 2_000, 10_000)).await })
        };
        // ... and the readers get busy, so w's last status read at its deadline is slow.
        tokio::time::sleep_until(t0 + Duration::from_millis(1_400)).await;
        let reads: Vec<_> = (0..48)
            .map(|_| {
                let e = e.clone();
                tokio::spawn(async move {
                    e.events
                        .read_all(None, Direction::Forwards, 4_000)
                        .await
                        .unwrap();
                })
            })
            .collect();

        let w = w.await.unwrap().unwrap();
        for task in writes.into_iter().chain(reads) {
            task.await.unwrap();
        }
        if let AcquireOutcome::TimedOut { .. } = &w {
            // A hand-off that lost the race with w's deadline releases what it took for w; that
            // release may still be on its way, so allow it a moment (a leaked lease lasts 30 s).
            let gave_up = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                let status = e.locks.status(k).await.unwrap();
                if status.as_ref().is_none_or(|l| l.owner != "w") {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < gave_up,
                    "w was told it timed out, yet holds the key: w = {w:?}, status = {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        y.abort();
    }

    fn acquired(outcome: syros_engine::Result<AcquireOutcome>) -> syros_engine::Lease {
        match outcome.unwrap() {
            AcquireOutcome::Acquired(lease) => lease,
            other => panic!("{other:?}"),
        }
    }

    /// Lock writes that queue while the writer connection is busy are committed as one group
    /// (one transaction): each still gets its own answer — grants with distinct,
    /// increasing tokens, one winner per contended key, the holder for a held key, the same
    /// lease for a repeated request id, a release's lease or "not held".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lock_writes_queued_together_get_their_own_answers() {
        let h = SqliteHarness::new().await;
        let e = h.engine();
        let held = acquired(e.locks.acquire(args("held", "h", 30_000, 0)).await);
        let to_release = acquired(e.locks.acquire(args("released", "r", 30_000, 0)).await);
        let busy = busy_writes(&e, 2);
        tokio::time::sleep(Duration::from_millis(50)).await;

        let acquire = |key: String, owner: String, request_id: &str| {
            let e = e.clone();
            let request_id = request_id.to_string();
            tokio::spawn(async move {
                e.locks
                    .acquire(syros_engine::AcquireLock {
                        request_id,
                        ..args(&key, &owner, 30_000, 0)
                    })
                    .await
            })
        };
        let distinct: Vec<_> = (0..20)
            .map(|i| acquire(format!("k{i}"), format!("o{i}"), ""))
            .collect();
        let contended: Vec<_> = (0..5)
            .map(|i| acquire("contended".into(), format!("c{i}"), ""))
            .collect();
        let on_held = acquire("held".into(), "x".into(), "");
        let same_request: Vec<_> = (0..2)
            .map(|_| acquire("idem".into(), "i".into(), "req-1"))
            .collect();
        let release = {
            let e = e.clone();
            let lease_id = to_release.lease_id.clone();
            tokio::spawn(async move { e.locks.release(&lease_id).await })
        };
        let release_again = {
            let e = e.clone();
            let lease_id = held.lease_id.replace(|c: char| c.is_ascii_digit(), "0");
            tokio::spawn(async move { e.locks.release(&lease_id).await })
        };

        let mut tokens = vec![held.fencing_token, to_release.fencing_token];
        for (i, task) in distinct.into_iter().enumerate() {
            let lease = acquired(task.await.unwrap());
            assert_eq!(
                (lease.key.as_str(), lease.owner.as_str()),
                (format!("k{i}").as_str(), format!("o{i}").as_str())
            );
            assert_eq!(
                e.locks.status(&lease.key).await.unwrap(),
                Some(lease.clone())
            );
            tokens.push(lease.fencing_token);
        }
        let mut winners = Vec::new();
        for task in contended {
            match task.await.unwrap().unwrap() {
                AcquireOutcome::Acquired(lease) => winners.push(lease),
                AcquireOutcome::TimedOut { holder } => assert!(holder.is_some()),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "one winner for a contended key: {winners:?}"
        );
        tokens.push(winners[0].fencing_token);
        match on_held.await.unwrap().unwrap() {
            AcquireOutcome::TimedOut { holder } => assert_eq!(holder, Some(held.clone())),
            other => panic!("a held key must not be granted: {other:?}"),
        }
        let mut same = Vec::new();
        for task in same_request {
            same.push(acquired(task.await.unwrap()));
        }
        assert_eq!(same[0], same[1], "one request id, one lease");
        tokens.push(same[0].fencing_token);
        assert_eq!(release.await.unwrap().unwrap(), to_release);
        assert!(
            release_again.await.unwrap().is_err(),
            "an unknown lease is not held"
        );
        assert_eq!(e.locks.status("released").await.unwrap(), None);

        let mut sorted = tokens.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            tokens.len(),
            "every grant has its own token: {tokens:?}"
        );
        for task in busy {
            task.await.unwrap();
        }
    }

    /// A pool of its own on the test's database file (another writer, like a second process).
    async fn other_connection(h: &SqliteHarness) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", h.path.display()))
            .await
            .expect("open the test's database")
    }

    fn two_events() -> Vec<EventInput> {
        let event = EventInput {
            event_type: "E".to_string(),
            data: "{}".to_string(),
            ..EventInput::default()
        };
        vec![event.clone(), event]
    }

    /// A statement that fails inside a group (a trigger refuses the second event of one stream's
    /// append) fails only its own write, whole (its first event is not kept): the group's other
    /// appends and lock writes commit and are answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_error_in_a_group_fails_only_its_write() {
        let h = SqliteHarness::new().await;
        let e = h.engine();
        let pool = other_connection(&h).await;
        sqlx::raw_sql(
            "CREATE TRIGGER refuse_stream BEFORE INSERT ON events
             WHEN NEW.stream = 'refused' AND NEW.version = 1
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .execute(&pool)
        .await
        .expect("create the trigger");
        pool.close().await;
        let busy = busy_writes(&e, 2);
        tokio::time::sleep(Duration::from_millis(50)).await;

        let append = |stream: &'static str| {
            let e = e.clone();
            tokio::spawn(async move {
                e.events
                    .append(stream, two_events(), ExpectedVersion::Any)
                    .await
            })
        };
        let before = append("before");
        let refused = append("refused");
        let after = append("after");
        let lock = {
            let e = e.clone();
            tokio::spawn(async move { e.locks.acquire(args("grouped", "o", 30_000, 0)).await })
        };

        let err = refused
            .await
            .unwrap()
            .expect_err("the trigger refuses the append");
        assert!(err.to_string().contains("refused by the test"), "{err}");
        let lease = acquired(lock.await.unwrap());
        assert_eq!(e.locks.status("grouped").await.unwrap(), Some(lease));
        for (task, stream) in [(before, "before"), (after, "after")] {
            let appended = task.await.unwrap().expect("the other appends commit");
            let read = e
                .events
                .read_stream(stream, None, Direction::Forwards, 10)
                .await
                .unwrap();
            assert_eq!(read.events.len(), 2, "{stream}");
            assert_eq!(read.events[1].global_position, appended.last_position);
        }
        let read = e
            .events
            .read_stream("refused", None, Direction::Forwards, 10)
            .await
            .unwrap();
        assert!(
            read.events.is_empty() && read.last_version.is_none(),
            "{read:?}"
        );
        for task in busy {
            task.await.unwrap();
        }
    }

    /// The lock writer and the sqlx writer are two connections to one file, and SQLite lets one
    /// write at a time: each waits for the other (busy timeout) instead of failing. A lock
    /// write waits for another connection's open write transaction; cache writes (on the sqlx
    /// writer, like saga transitions) wait for the lock writer's long transactions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_two_writer_connections_wait_for_each_other() {
        let h = SqliteHarness::new().await;
        let e = h.engine();
        let pool = other_connection(&h).await;
        let mut other = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("INSERT INTO meta (name, value) VALUES ('test_marker', 1)")
            .execute(&mut *other)
            .await
            .unwrap();
        let waiting = {
            let e = e.clone();
            tokio::spawn(async move { e.locks.acquire(args("waits", "o", 30_000, 0)).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !waiting.is_finished(),
            "the acquire cannot commit while another connection writes"
        );
        other.commit().await.unwrap();
        pool.close().await;
        acquired(waiting.await.unwrap());

        let busy = busy_writes(&e, 3);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cache_sets: Vec<_> = (0..5)
            .map(|i| {
                let e = e.clone();
                tokio::spawn(async move {
                    e.cache
                        .set(&format!("c{i}"), vec![i], 0, vec!["t".to_string()])
                        .await
                })
            })
            .collect();
        for (i, task) in cache_sets.into_iter().enumerate() {
            task.await
                .unwrap()
                .expect("a cache set waits for the lock writer");
            let key = format!("c{i}");
            let entry = e.cache.get(&key).await.unwrap().expect("stored entry");
            assert_eq!(entry.value, vec![u8::try_from(i).unwrap()]);
        }
        for task in busy {
            task.await.unwrap();
        }
    }
}

/// `synchronous = NORMAL` lets an OS crash or power loss roll the database back to an older
/// commit. The fencing counter must still never reissue a token.
mod crash_rollback {
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use syros_engine::{AcquireLock, AcquireOutcome, Engine};

    use super::SqliteHarness;

    async fn token(engine: &Engine, key: &str) -> u64 {
        let args = AcquireLock {
            key: key.to_string(),
            owner: "o".to_string(),
            ttl_ms: 60_000,
            wait_timeout_ms: 0,
            request_id: String::new(),
        };
        match engine.locks.acquire(args).await.unwrap() {
            AcquireOutcome::Acquired(lease) => lease.fencing_token,
            other => panic!("{other:?}"),
        }
    }

    fn files(db: &Path) -> [PathBuf; 3] {
        ["", "-wal", "-shm"].map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
    }

    async fn close(engine: std::sync::Arc<Engine>) {
        engine.shutdown();
        drop(engine);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Open (durable boot), snapshot the files as the disk holds them after that open, issue
    /// tokens, then restore the snapshot (what the disk may hold after a power loss, since those
    /// later commits were never synced) and open again: new tokens exceed every earlier one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rolled_back_database_never_reissues_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db.sqlite");
        let engine = SqliteHarness::open(&db).await;
        let before = token(&engine, "a").await;
        close(engine).await;

        let engine = SqliteHarness::open(&db).await;
        let snapshot = dir.path().join("snapshot");
        std::fs::create_dir(&snapshot).unwrap();
        for (i, file) in files(&db).iter().enumerate().take(2) {
            if file.exists() {
                std::fs::copy(file, snapshot.join(i.to_string())).unwrap();
            }
        }
        let mut issued = vec![before];
        for key in ["b", "c", "d", "e"] {
            issued.push(token(&engine, key).await);
        }
        close(engine).await;

        for file in files(&db) {
            let _ = std::fs::remove_file(file);
        }
        for (i, file) in files(&db).iter().enumerate().take(2) {
            let saved = snapshot.join(i.to_string());
            if saved.exists() {
                std::fs::copy(saved, file).unwrap();
            }
        }
        let engine = SqliteHarness::open(&db).await;
        let highest = *issued.iter().max().unwrap();
        for key in ["f", "g", "h"] {
            let again = token(&engine, key).await;
            assert!(
                again > highest,
                "token {again} issued after the rollback; {highest} was issued before ({issued:?})"
            );
        }
        close(engine).await;
    }
}

/// The shared group-commit tests (`suite::append_groups`) on the embedded store, whose appends
/// go through the writer's group commit with lock writes.
mod append_groups {
    use syros_engine::backend::sqlite::SqliteStore;

    use super::suite::append_groups;

    async fn fresh_store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("groups.sqlite"))
            .await
            .expect("open SQLite store")
    }

    #[tokio::test]
    async fn a_failed_check_fails_only_its_append() {
        let dir = tempfile::tempdir().expect("temporary directory");
        append_groups::a_failed_check_fails_only_its_append(&fresh_store(&dir).await).await;
    }

    #[tokio::test]
    async fn a_repeat_of_a_grouped_append_is_acknowledged_once() {
        let dir = tempfile::tempdir().expect("temporary directory");
        append_groups::a_repeat_of_a_grouped_append_is_acknowledged_once(&fresh_store(&dir).await)
            .await;
    }
}

/// An in-memory URL is refused at open: the lock writer opens the database file again with a
/// connection of its own, and a second in-memory connection would be another database.
#[tokio::test]
async fn an_in_memory_url_is_refused() {
    let err = syros_engine::backend::sqlite::SqliteStore::open_url("sqlite::memory:")
        .await
        .err()
        .expect("an in-memory database cannot be opened");
    assert!(err.to_string().contains("needs a database file"), "{err}");
}

/// The lock writer reads the fencing counter in each write transaction and stores it back once
/// per transaction (no per-grant trigger since migration 0011).
mod fencing_counter {
    use std::path::Path;

    use sqlx::migrate::Migrator;
    use syros_engine::backend::sqlite::SqliteStore;
    use syros_engine::store::{LeaseRequest, LockStore, TryAcquire};

    const NOW_MS: i64 = 1_000_000;

    fn request(key: &str) -> LeaseRequest {
        LeaseRequest {
            key: key.to_string(),
            owner: "o".to_string(),
            ttl_ms: 60_000,
            request_id: None,
        }
    }

    async fn granted(store: &SqliteStore, key: &str) -> syros_engine::Lease {
        match store.try_acquire(&request(key), NOW_MS).await.unwrap() {
            TryAcquire::Acquired(lease) => lease,
            TryAcquire::Held(lease) => panic!("{key} is held: {lease:?}"),
        }
    }

    /// Two stores on one file (two lock writers, as two processes sharing it): a key taken in
    /// turn by one then the other gets a greater token every time, and tokens handed out
    /// concurrently by both are all distinct. A counter kept in memory across transactions
    /// would hand out the other writer's tokens again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_stores_on_one_file_never_reissue_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.sqlite");
        let first = SqliteStore::open(&path).await.unwrap();
        let second = SqliteStore::open(&path).await.unwrap();
        let mut last = 0;
        for turn in 0..10 {
            let store = if turn % 2 == 0 { &first } else { &second };
            let lease = granted(store, "shared").await;
            assert!(
                lease.fencing_token > last,
                "turn {turn}: token {} after {last}",
                lease.fencing_token
            );
            last = lease.fencing_token;
            store.release(&lease.lease_id, NOW_MS).await.unwrap();
        }

        let (first, second) = (std::sync::Arc::new(first), std::sync::Arc::new(second));
        let mut tasks = Vec::new();
        for worker in 0..16 {
            let store = if worker % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            tasks.push(tokio::spawn(async move {
                let mut tokens = Vec::new();
                for cycle in 0..20 {
                    let lease = granted(&store, &format!("w{worker}-{cycle}")).await;
                    tokens.push(lease.fencing_token);
                    store.release(&lease.lease_id, NOW_MS).await.unwrap();
                }
                tokens
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let tokens = task.await.unwrap();
            assert!(
                tokens.windows(2).all(|pair| pair[0] < pair[1]),
                "one worker's tokens went back: {tokens:?}"
            );
            all.extend(tokens);
        }
        let issued = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), issued, "a token was handed out twice");
        assert!(all[0] > last, "a token below the earlier {last}");
    }

    /// A database written before migration 0011 (the counter moved by triggers, the locks table
    /// with a rowid) keeps its leases and its counter: the held lease is still held and
    /// released, new tokens continue above the stored counter, the triggers are gone and the
    /// table is keyed by `key`.
    #[tokio::test]
    async fn a_file_from_before_migration_0011_keeps_its_leases_and_counter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options.clone())
            .await
            .unwrap();
        let mut old =
            Migrator::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"))
                .await
                .unwrap();
        old.migrations = old
            .migrations
            .iter()
            .filter(|migration| migration.version < 11)
            .cloned()
            .collect::<Vec<_>>()
            .into();
        old.run(&pool).await.unwrap();
        // The grant of the builds before 0011: the token read from meta, the trigger storing it.
        for (key, lease_id, expires_at_ms) in [
            ("held", "held-lease", NOW_MS + 60_000),
            ("expired", "expired-lease", NOW_MS - 1),
        ] {
            sqlx::query(
                "INSERT INTO locks (key, lease_id, owner, fencing_token, acquired_at_ms, expires_at_ms)
                 VALUES (?, ?, 'old', (SELECT value + 1 FROM meta WHERE name = 'fencing_token'), 0, ?)",
            )
            .bind(key)
            .bind(lease_id)
            .bind(expires_at_ms)
            .execute(&pool)
            .await
            .unwrap();
        }
        let counter: i64 =
            sqlx::query_scalar("SELECT value FROM meta WHERE name = 'fencing_token'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(counter, 2, "the old schema's triggers moved the counter");
        pool.close().await;

        let store = SqliteStore::open(&path).await.unwrap();
        match store.try_acquire(&request("held"), NOW_MS).await.unwrap() {
            TryAcquire::Held(lease) => {
                assert_eq!(
                    (lease.lease_id.as_str(), lease.fencing_token),
                    ("held-lease", 1)
                )
            }
            other => panic!("the old lease is gone: {other:?}"),
        }
        assert_eq!(granted(&store, "expired").await.fencing_token, 3);
        let released = store.release("held-lease", NOW_MS).await.unwrap();
        assert_eq!(
            (released.key.as_str(), released.owner.as_str()),
            ("held", "old")
        );
        assert_eq!(granted(&store, "held").await.fencing_token, 4);

        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let triggers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'locks'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(triggers, 0);
        let table: String = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'locks'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(table.contains("WITHOUT ROWID"), "{table}");
        let stored: i64 = sqlx::query_scalar("SELECT value FROM meta WHERE name = 'fencing_token'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored, 4, "the counter is stored back with the grants");
        pool.close().await;
    }
}
