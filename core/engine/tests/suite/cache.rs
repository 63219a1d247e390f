//! Cache: values, tags, TTLs and limits.

use std::time::Duration;

use syros_engine::limits::now_ms;
use syros_engine::{CacheEntry, ErrorKind, Limits};

use super::{expect_kind, unique, Harness};

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub async fn set_get_overwrite_delete<H: Harness>(h: H) {
    let e = h.engine();
    let k = unique("cache");
    let (ta, tb, tc) = (unique("tag-a"), unique("tag-b"), unique("tag-c"));
    let value = vec![0u8, 1, 2, 0xff, 0, 0x80];

    // Tags come back sorted and without duplicates, whatever order they were given in.
    let given = vec![tb.clone(), ta.clone(), tb.clone()];
    let mut sorted = vec![ta.clone(), tb.clone()];
    sorted.sort();
    let stored = e.cache.set(&k, value.clone(), 0, given).await.unwrap();
    let expected = CacheEntry {
        key: k.clone(),
        value: value.clone(),
        expires_at_ms: None,
        tags: sorted.clone(),
    };
    assert_eq!(stored, expected);
    assert_eq!(e.cache.get(&k).await.unwrap(), Some(expected));

    // Overwrite replaces value and tags.
    let stored = e
        .cache
        .set(&k, b"second".to_vec(), 0, vec![tc.clone()])
        .await
        .unwrap();
    assert_eq!(stored.tags, vec![tc.clone()]);
    let got = e.cache.get(&k).await.unwrap().expect("overwritten entry");
    assert_eq!(got.value, b"second");
    assert_eq!(got.tags, vec![tc.clone()]);
    assert_eq!(got.expires_at_ms, None);
    assert_eq!(
        e.cache.invalidate_tag(&ta).await.unwrap(),
        0,
        "old tag still attached"
    );
    assert_eq!(
        e.cache.invalidate_tag(&tb).await.unwrap(),
        0,
        "old tag still attached"
    );
    assert!(e.cache.get(&k).await.unwrap().is_some());

    // An empty value and no tags are fine.
    e.cache.set(&k, Vec::new(), 0, Vec::new()).await.unwrap();
    let got = e.cache.get(&k).await.unwrap().expect("empty value");
    assert!(got.value.is_empty());
    assert!(got.tags.is_empty());
    assert_eq!(e.cache.invalidate_tag(&tc).await.unwrap(), 0);

    assert!(e.cache.delete(&k).await.unwrap());
    assert!(!e.cache.delete(&k).await.unwrap());
    assert_eq!(e.cache.get(&k).await.unwrap(), None);
    assert_eq!(e.cache.get(&unique("missing")).await.unwrap(), None);
    assert!(!e.cache.delete(&unique("missing")).await.unwrap());
}

pub async fn ttl_expires_entries<H: Harness>(h: H) {
    let e = h.engine();
    let short = unique("short");
    let forever = unique("forever");
    let before = now_ms();
    let stored = e
        .cache
        .set(&short, b"v".to_vec(), 200, Vec::new())
        .await
        .unwrap();
    let after = now_ms();
    let expires = stored.expires_at_ms.expect("a TTL gives an expiry");
    assert!(
        expires >= before + 200 - 1_000 && expires <= after + 200 + 1_000,
        "{expires}"
    );
    e.cache
        .set(&forever, b"v".to_vec(), 0, Vec::new())
        .await
        .unwrap();
    let got = e.cache.get(&short).await.unwrap().expect("not expired yet");
    assert_eq!(got.expires_at_ms, Some(expires));

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        e.cache.get(&short).await.unwrap(),
        None,
        "expired entry served"
    );
    assert!(e.cache.get(&forever).await.unwrap().is_some());

    // Setting again revives the key; a TTL of 0 means no expiry.
    e.cache
        .set(&short, b"w".to_vec(), 0, Vec::new())
        .await
        .unwrap();
    assert_eq!(e.cache.get(&short).await.unwrap().unwrap().value, b"w");
    let err = expect_kind(
        e.cache
            .set(
                &short,
                b"x".to_vec(),
                Limits::default().cache_max_ttl_ms + 1,
                Vec::new(),
            )
            .await,
        ErrorKind::InvalidArgument,
    );
    assert!(!err.message.is_empty());
    assert_eq!(e.cache.get(&short).await.unwrap().unwrap().value, b"w");
}

pub async fn invalidate_tag_removes_tagged_keys<H: Harness>(h: H) {
    let e = h.engine();
    let (t, u) = (unique("t"), unique("u"));
    let (k1, k2, k3) = (unique("k1"), unique("k2"), unique("k3"));
    e.cache
        .set(&k1, b"1".to_vec(), 0, vec![t.clone()])
        .await
        .unwrap();
    e.cache
        .set(&k2, b"2".to_vec(), 60_000, vec![u.clone(), t.clone()])
        .await
        .unwrap();
    e.cache
        .set(&k3, b"3".to_vec(), 0, vec![u.clone()])
        .await
        .unwrap();

    assert_eq!(e.cache.invalidate_tag(&t).await.unwrap(), 2);
    assert_eq!(e.cache.get(&k1).await.unwrap(), None);
    assert_eq!(e.cache.get(&k2).await.unwrap(), None);
    assert_eq!(e.cache.get(&k3).await.unwrap().unwrap().value, b"3");
    assert_eq!(e.cache.invalidate_tag(&t).await.unwrap(), 0);

    // k2's other tag went with it: only k3 carries u now.
    assert_eq!(e.cache.invalidate_tag(&u).await.unwrap(), 1);
    assert_eq!(e.cache.get(&k3).await.unwrap(), None);

    // A key set again after invalidation carries only its new tags.
    e.cache
        .set(&k1, b"1".to_vec(), 0, vec![u.clone()])
        .await
        .unwrap();
    assert_eq!(e.cache.invalidate_tag(&t).await.unwrap(), 0);
    assert!(e.cache.get(&k1).await.unwrap().is_some());
    expect_kind(e.cache.invalidate_tag("").await, ErrorKind::InvalidArgument);
}

pub async fn size_and_tag_limits<H: Harness>(h: H) {
    let e = h.engine();
    let limits = Limits::default();
    let max = limits.cache_max_value_bytes;
    let (k1, k2, k3) = (unique("big"), unique("too-big"), unique("tags"));

    let stored = e
        .cache
        .set(&k1, vec![7u8; max], 0, Vec::new())
        .await
        .unwrap();
    assert_eq!(stored.value.len(), max);
    assert_eq!(e.cache.get(&k1).await.unwrap().unwrap().value.len(), max);

    expect_kind(
        e.cache.set(&k2, vec![7u8; max + 1], 0, Vec::new()).await,
        ErrorKind::PayloadTooLarge,
    );
    assert_eq!(e.cache.get(&k2).await.unwrap(), None);
    // A rejected overwrite leaves the old value.
    expect_kind(
        e.cache.set(&k1, vec![8u8; max + 1], 0, Vec::new()).await,
        ErrorKind::PayloadTooLarge,
    );
    let kept = e.cache.get(&k1).await.unwrap().unwrap();
    assert_eq!(kept.value.len(), max);
    assert!(kept.value.iter().all(|b| *b == 7));

    let too_many: Vec<String> = (0..=limits.max_tags).map(|i| format!("{k3}-{i}")).collect();
    expect_kind(
        e.cache.set(&k3, b"v".to_vec(), 0, too_many.clone()).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        e.cache.set(&k3, b"v".to_vec(), 0, tags(&["ok", ""])).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        e.cache
            .set(&k3, b"v".to_vec(), 0, vec!["a\nb".to_string()])
            .await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        e.cache
            .set(
                &k3,
                b"v".to_vec(),
                0,
                vec!["t".repeat(limits.max_tag_bytes + 1)],
            )
            .await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(
        e.cache.set("", b"v".to_vec(), 0, Vec::new()).await,
        ErrorKind::InvalidArgument,
    );
    expect_kind(e.cache.get("").await, ErrorKind::InvalidArgument);
    expect_kind(e.cache.delete("").await, ErrorKind::InvalidArgument);
    assert_eq!(
        e.cache.get(&k3).await.unwrap(),
        None,
        "a rejected set stored something"
    );
    assert_eq!(e.cache.invalidate_tag(&format!("{k3}-0")).await.unwrap(), 0);

    // Exactly the maximum number of tags is fine.
    let most = too_many[..limits.max_tags].to_vec();
    let stored = e
        .cache
        .set(&k3, b"v".to_vec(), 0, most.clone())
        .await
        .unwrap();
    let mut sorted = most;
    sorted.sort();
    assert_eq!(stored.tags, sorted);
    assert_eq!(e.cache.get(&k3).await.unwrap().unwrap().tags, sorted);
}

pub async fn entries_survive_restart<H: Harness>(mut h: H) {
    let k = unique("durable");
    let t = unique("durable-tag");
    let stored = h
        .engine()
        .cache
        .set(&k, b"kept".to_vec(), 60_000, vec![t.clone()])
        .await
        .unwrap();
    let e = h.restart().await;
    assert_eq!(e.cache.get(&k).await.unwrap(), Some(stored));
    assert_eq!(e.cache.invalidate_tag(&t).await.unwrap(), 1);
    assert_eq!(e.cache.get(&k).await.unwrap(), None);
}

/// A set repeated with the same request id (a client retry after a lost reply) changes nothing,
/// so it cannot bring back a value that `invalidate_tag` removed after the first set.
pub async fn repeated_set_request_changes_nothing<H: Harness>(h: H) {
    let e = h.engine();
    let (k, tag) = (unique("key"), unique("tag"));
    let request = unique("request");
    let first = e
        .cache
        .set_once(&k, b"v1".to_vec(), 60_000, tags(&[&tag]), &request)
        .await
        .unwrap();
    assert_eq!(e.cache.invalidate_tag(&tag).await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let retried = e
        .cache
        .set_once(&k, b"v1".to_vec(), 60_000, tags(&[&tag]), &request)
        .await
        .unwrap();
    assert_eq!(
        retried.expires_at_ms, first.expires_at_ms,
        "the first set's expiry"
    );
    assert!(
        e.cache.get(&k).await.unwrap().is_none(),
        "resurrected by a retry"
    );

    // A new request id is a new set; no request id is never deduplicated.
    e.cache
        .set_once(&k, b"v2".to_vec(), 0, tags(&[&tag]), &unique("request"))
        .await
        .unwrap();
    assert_eq!(e.cache.get(&k).await.unwrap().unwrap().value, b"v2");
    e.cache.delete(&k).await.unwrap();
    e.cache
        .set_once(&k, b"v3".to_vec(), 0, Vec::new(), "")
        .await
        .unwrap();
    e.cache.delete(&k).await.unwrap();
    e.cache
        .set_once(&k, b"v3".to_vec(), 0, Vec::new(), "")
        .await
        .unwrap();
    assert_eq!(e.cache.get(&k).await.unwrap().unwrap().value, b"v3");
    expect_kind(
        e.cache
            .set_once(&k, b"v".to_vec(), 0, Vec::new(), "bad\nid")
            .await,
        ErrorKind::InvalidArgument,
    );
}
