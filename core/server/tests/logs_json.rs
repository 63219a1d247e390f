//! `LOG_FORMAT=json`: every log line is a JSON object, and lines logged inside an API call
//! carry its `request_id`, `trace_id` (the caller's, from `traceparent`) and `span_id`
//! (docs/tracing.md). Traces are not exported here (no `OTEL_*` endpoint): ids in logs must not
//! depend on it.

use std::time::Duration;

use serde_json::Value;
use syros_client::trace::{scope, TraceContext};
use syros_client::{Client, ClientOptions};
use syros_launcher::SyrosServer;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn json_log_lines_carry_request_and_trace_ids() {
    let server = SyrosServer::builder()
        .binary(env!("CARGO_BIN_EXE_syros"))
        .env("LOG_FORMAT", "json")
        // The per-call "call finished" line is at DEBUG.
        .env("LOG_LEVEL", "info,syros::telemetry=debug")
        .start();

    // gRPC through the client core, inside a caller's trace.
    let client = Client::connect(ClientOptions::new([server.grpc_address()]))
        .await
        .expect("connect");
    let caller = TraceContext::new(&format!("00-{TRACE_ID}-00f067aa0ba902b7-01"), None);
    scope(caller, async {
        let lease = client
            .lock("logs/json")
            .ttl(Duration::from_secs(10))
            .acquire()
            .await
            .expect("acquire");
        lease.release().await.expect("release");
    })
    .await;

    // REST with the caller's request id, on a call that fails.
    let response = reqwest::Client::new()
        .delete(server.rest_url("/api/v1/locks/0123456789abcdef0123456789abcdef"))
        .header("x-request-id", "rest-req-1")
        .send()
        .await
        .expect("REST call");
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(
        response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("rest-req-1"),
        "the request id comes back to the caller"
    );

    // Each line is written before its call's answer is sent: the log is complete now.
    let log = server.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "syros ready"),
        "{log}"
    );
    let finished = |name: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == "call finished" && l["span"]["otel.name"] == name)
            .collect()
    };

    let acquire = finished("syros.v1.LockService/Acquire");
    assert_eq!(acquire.len(), 1, "{log}");
    let acquire = acquire[0];
    assert_eq!(acquire["trace_id"], TRACE_ID, "{acquire}");
    assert!(
        is_hex(acquire["span_id"].as_str().unwrap_or(""), 16),
        "{acquire}"
    );
    assert_ne!(
        acquire["span_id"], "00f067aa0ba902b7",
        "the server's own span"
    );
    let request_id = acquire["request_id"].as_str().expect("a request id");
    assert!(uuid_like(request_id), "{acquire}");
    assert_eq!(acquire["fields"]["status"], "OK", "{acquire}");

    let release = finished("syros.v1.LockService/Release");
    assert_eq!(release.len(), 1, "{log}");
    assert_eq!(release[0]["trace_id"], TRACE_ID, "{}", release[0]);
    assert_ne!(
        release[0]["request_id"], acquire["request_id"],
        "one id per call"
    );

    let rest = finished("DELETE /api/v1/locks/{lease_id}");
    assert_eq!(rest.len(), 1, "{log}");
    assert_eq!(rest[0]["request_id"], "rest-req-1", "{}", rest[0]);
    // No traceparent: a trace id of the server's own, still well-formed.
    let rest_trace = rest[0]["trace_id"].as_str().unwrap_or("");
    assert!(
        is_hex(rest_trace, 32) && rest_trace != TRACE_ID,
        "{}",
        rest[0]
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
}
