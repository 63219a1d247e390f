//! What one HTTP request may cost the server in memory, measured on a real `syros serve` by its
//! peak resident set (VmHWM): a large event read and a large POST must cost a small multiple of
//! their payload, not the many times that expanding JSON into a tree costs.

mod common;

use common::*;
use serde_json::{json, Value};

const MIB: u64 = 1024 * 1024;

/// A JSON array of small numbers of about `bytes` bytes: the shape that costs most when expanded
/// into a tree.
fn numbers(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 8);
    text.push('[');
    while text.len() < bytes {
        text.push_str("1,");
    }
    text.push_str("1]");
    text
}

/// POST `body` (JSON text) to the stream `big`.
async fn append_raw(server: &ServerProcess, body: String) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(server.rest_url("/api/v1/events/big"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

#[tokio::test]
async fn a_large_read_costs_a_small_multiple_of_its_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    let http = reqwest::Client::new();
    // 40 events of 512 KiB: 20 MiB, appended one at a time (each append is small).
    let data = numbers(512 * 1024);
    for _ in 0..40 {
        let response = append_raw(
            &server,
            format!(r#"{{"event_type": "Big", "data": {data}}}"#),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 201);
    }
    let before = server.peak_rss_bytes();
    let mut read = 0u64;
    let mut from = 0u64;
    let mut pages = 0;
    loop {
        let page: Value = http
            .get(server.rest_url(&format!("/api/v1/events/big?from={from}&limit=10000")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages += 1;
        read += page["events"].as_array().unwrap().len() as u64;
        match page["next_from"].as_u64() {
            Some(next) => from = next,
            None => break,
        }
    }
    let growth = server.peak_rss_bytes().saturating_sub(before);
    eprintln!(
        "reading 20 MiB of events in {pages} pages: peak RSS +{} MiB",
        growth / MIB
    );
    assert!(
        growth < 5 * 20 * MIB,
        "reading 20 MiB of events raised the peak RSS by {} MiB",
        growth / MIB
    );
    assert_eq!(read, 40, "every event is read, in {pages} pages");
    assert!(pages > 1, "a 20 MiB answer is cut at the byte budget");
}

#[tokio::test]
async fn a_large_post_costs_a_small_multiple_of_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path()).await;
    // One 15 MiB event: parsed, then refused by the event size limit.
    let body = format!(
        r#"{{"event_type": "Big", "data": {}}}"#,
        numbers(15 * 1024 * 1024)
    );
    let before = server.peak_rss_bytes();
    let response = append_raw(&server, body).await.unwrap();
    assert_eq!(response.status(), 413);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], "payload_too_large", "{answer}");
    let growth = server.peak_rss_bytes().saturating_sub(before);
    eprintln!("a 15 MiB POST: peak RSS +{} MiB", growth / MIB);
    assert!(
        growth < 5 * 15 * MIB,
        "a 15 MiB POST raised the peak RSS by {} MiB",
        growth / MIB
    );
    // A body over the limit is refused from its announced length, before it is read: the
    // answer may come (and the connection close) while the client is still sending.
    let too_big = append_raw(
        &server,
        json!({"data": numbers(17 * 1024 * 1024)}).to_string(),
    )
    .await;
    match too_big {
        Ok(response) => assert_eq!(response.status(), 413),
        Err(err) => assert!(err.is_request(), "{err}"),
    }
}
