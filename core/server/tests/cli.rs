//! The operator CLI (`syros lock|cache|events|saga|health`, docs/cli.md): the real binary
//! (`SYROS_BIN`) against live servers started by the launcher. Every subcommand in table and
//! JSON output, the documented exit codes (not found, wrong expected version, no credentials,
//! unreachable server, usage), `events tail` following live, and `--help` everywhere.

mod security_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use syros_client::{Client, ClientOptions, TaskFailure};
use syros_launcher::{syros_bin, SyrosServer};

/// `syros ARGS --address ADDRESS`, with no SYROS_* setting inherited from the environment.
fn command(address: &str, args: &[&str]) -> Command {
    let mut command = Command::new(syros_bin());
    command.args(args).args(["--address", address]);
    for name in [
        "SYROS_ADDRESS",
        "SYROS_TOKEN",
        "SYROS_OUTPUT",
        "SYROS_TIMEOUT",
        "SYROS_TLS_CA_FILE",
    ] {
        command.env_remove(name);
    }
    command
}

/// Run the CLI to its end.
fn syros(address: &str, args: &[&str]) -> Output {
    command(address, args)
        .stdin(Stdio::null())
        .output()
        .expect("run syros")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run the CLI, expect exit status 0, and return its stdout.
fn ok(address: &str, args: &[&str]) -> String {
    let out = syros(address, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "syros {args:?}: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Run the CLI with `--output json`, expect exit status 0, and parse its one JSON document.
fn json(address: &str, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.extend(["--output", "json"]);
    let stdout = ok(address, &with_json);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("syros {args:?}: {e}: {stdout}"))
}

/// Run the CLI with `--output json`, expect exit status `code`, and parse the error document it
/// printed on stderr.
fn fails(address: &str, args: &[&str], code: i32) -> Value {
    let mut with_json = args.to_vec();
    with_json.extend(["--output", "json"]);
    let out = syros(address, &with_json);
    assert_eq!(
        out.status.code(),
        Some(code),
        "syros {args:?}: stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "an error prints nothing on stdout");
    let stderr = text(&out.stderr);
    let document: Value = serde_json::from_str(stderr.trim())
        .unwrap_or_else(|e| panic!("syros {args:?}: stderr is not JSON ({e}): {stderr}"));
    assert_eq!(document["error"]["exit_code"], code, "{document}");
    document
}

async fn client(server: &SyrosServer) -> Client {
    Client::connect(ClientOptions::new([server.grpc_address()]))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_ls_status_and_forced_release() {
    let server = SyrosServer::start();
    let address = &server.grpc_address();
    let client = client(&server).await;
    let lease = client
        .lock("cli/orders/1")
        .owner("worker-7")
        .ttl(Duration::from_secs(60))
        .acquire()
        .await
        .unwrap();

    let table = ok(address, &["lock", "ls", "cli/"]);
    assert!(table.contains("FENCING TOKEN"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains("cli/orders/1"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("worker-7"), "{row}");
    assert!(row.contains(&lease.fencing_token().to_string()), "{row}");
    let listed = json(address, &["lock", "ls", "cli/"]);
    assert_eq!(listed["locks"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["locks"][0]["key"], "cli/orders/1");
    assert_eq!(listed["locks"][0]["fencing_token"], lease.fencing_token());
    let other_prefix = json(address, &["lock", "ls", "nothing-here/"]);
    assert_eq!(other_prefix["locks"], serde_json::json!([]));

    let status = json(address, &["lock", "status", "cli/orders/1"]);
    assert_eq!(status["held"], true);
    assert_eq!(status["lease"]["owner"], "worker-7");
    assert_eq!(status["lease"]["lease_id"], lease.lease_id());
    let table = ok(address, &["lock", "status", "cli/orders/1"]);
    assert!(
        table.contains("OWNER") && table.contains("worker-7"),
        "{table}"
    );
    let free = json(address, &["lock", "status", "cli/orders/free"]);
    assert_eq!(free["held"], false);
    assert_eq!(free["lease"], Value::Null);

    let released = json(address, &["lock", "release", "cli/orders/1", "--force"]);
    assert_eq!(released["released"]["lease_id"], lease.lease_id());
    assert_eq!(
        json(address, &["lock", "status", "cli/orders/1"])["held"],
        false
    );
    // Nothing holds it any more: exit 2, lock_not_held.
    let err = fails(address, &["lock", "release", "cli/orders/1", "--force"], 2);
    assert_eq!(err["error"]["code"], "lock_not_held");
    // The holder finds out on its next call.
    assert!(lease.release().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_get_set_delete_and_invalidate_tag() {
    let server = SyrosServer::start();
    let address = &server.grpc_address();

    let set = json(
        address,
        &[
            "cache",
            "set",
            "user:42",
            r#"{"name":"Ada"}"#,
            "--ttl",
            "5m",
            "--tag",
            "users",
            "--tag",
            "tenant:7",
        ],
    );
    assert_eq!(set["key"], "user:42");
    assert!(set["expires_at_ms"].as_i64().unwrap() > 0, "{set}");
    let entry = json(address, &["cache", "get", "user:42"]);
    assert_eq!(entry["value"], r#"{"name":"Ada"}"#);
    let mut tags: Vec<_> = entry["tags"].as_array().unwrap().clone();
    tags.sort_by_key(|t| t.to_string());
    assert_eq!(
        tags,
        [serde_json::json!("tenant:7"), serde_json::json!("users")]
    );
    assert_eq!(entry["expires_at_ms"], set["expires_at_ms"]);
    let table = ok(address, &["cache", "get", "user:42"]);
    assert!(
        table.contains(r#"{"name":"Ada"}"#) && table.contains("users"),
        "{table}"
    );
    ok(
        address,
        &["cache", "set", "user:43", "plain", "--tag", "users"],
    );
    assert_eq!(
        json(address, &["cache", "get", "user:43"])["expires_at_ms"],
        Value::Null
    );

    // Bytes from stdin, back with --raw.
    let bytes: Vec<u8> = vec![0, 159, 146, 150, 255, b'\n'];
    let mut child = command(address, &["cache", "set", "blob", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        syros(address, &["cache", "get", "blob", "--raw"]).stdout,
        bytes
    );
    let blob = json(address, &["cache", "get", "blob"]);
    assert_eq!(blob["value"], Value::Null, "not UTF-8: {blob}");
    assert_eq!(blob["value_base64"], "AJ+Slv8K");

    let removed = json(address, &["cache", "invalidate-tag", "users"]);
    assert_eq!(removed["removed"], 2);
    assert!(ok(address, &["cache", "invalidate-tag", "users"]).contains("removed 0"));
    let err = fails(address, &["cache", "get", "user:42"], 2);
    assert_eq!(err["error"]["code"], "not_found");
    // Table mode: the code on stderr, nothing on stdout.
    let out = syros(address, &["cache", "get", "user:42"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("error[not_found]"), "{out:?}");

    assert_eq!(json(address, &["cache", "delete", "blob"])["deleted"], true);
    assert_eq!(
        json(address, &["cache", "delete", "blob"])["deleted"],
        false
    );
    fails(address, &["cache", "get", "blob"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_append_read_and_version_conflict() {
    let server = SyrosServer::start();
    let address = &server.grpc_address();

    let first = json(
        address,
        &[
            "events",
            "append",
            "orders-42",
            "--type",
            "OrderCreated",
            "--data",
            r#"{"total":129.9}"#,
            "--metadata",
            r#"{"by":"cli"}"#,
            "--expected-version",
            "no_stream",
        ],
    );
    assert_eq!(first["version"], 0);
    let table = ok(
        address,
        &[
            "events",
            "append",
            "orders-42",
            "--type",
            "OrderPaid",
            "--expected-version",
            "0",
        ],
    );
    assert!(table.contains("at version 1"), "{table}");

    // Wrong expected version: exit 3, version_conflict, nothing appended.
    for expected in ["0", "no_stream"] {
        let err = fails(
            address,
            &[
                "events",
                "append",
                "orders-42",
                "--type",
                "OrderPaid",
                "--expected-version",
                expected,
            ],
            3,
        );
        assert_eq!(err["error"]["code"], "version_conflict");
    }

    let read = json(address, &["events", "read", "orders-42"]);
    assert_eq!(read["last_version"], 1);
    let events = read["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{read}");
    assert_eq!(events[0]["event_type"], "OrderCreated");
    assert_eq!(events[0]["data"]["total"], 129.9);
    assert_eq!(events[0]["metadata"]["by"], "cli");
    assert_eq!(events[1]["event_type"], "OrderPaid");
    assert_eq!(events[1]["version"], 1);
    let newest = json(
        address,
        &["events", "read", "orders-42", "--backwards", "--limit", "1"],
    );
    assert_eq!(newest["events"][0]["event_type"], "OrderPaid");
    let from_one = json(address, &["events", "read", "orders-42", "--from", "1"]);
    assert_eq!(from_one["events"].as_array().unwrap().len(), 1);
    let table = ok(address, &["events", "read", "orders-42"]);
    assert!(
        table.contains("OrderCreated") && table.contains(r#"{"total":129.9}"#),
        "{table}"
    );

    let err = fails(address, &["events", "read", "no-such-stream"], 2);
    assert_eq!(err["error"]["code"], "not_found");
    // Bad input the server refuses: exit 1.
    let err = fails(
        address,
        &[
            "events",
            "append",
            "orders-42",
            "--type",
            "X",
            "--data",
            "{not json",
        ],
        1,
    );
    assert_eq!(err["error"]["code"], "invalid_argument");
}

/// Lines of a child's stdout, read on a thread so a test can wait with a timeout.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_follows_live_until_interrupted() {
    let server = SyrosServer::start();
    let address = &server.grpc_address();
    ok(
        address,
        &[
            "events",
            "append",
            "live",
            "--type",
            "Before",
            "--data",
            r#"{"n":0}"#,
        ],
    );

    let mut tail = command(
        address,
        &["events", "tail", "live", "--from", "0", "--output", "json"],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let lines = lines_of(&mut tail);
    let wait = Duration::from_secs(30);
    // Catch-up first: once the stored event is out, the subscription is live.
    let first: Value = serde_json::from_str(&lines.recv_timeout(wait).expect("catch-up")).unwrap();
    assert_eq!(first["event_type"], "Before");
    assert_eq!(first["version"], 0);

    ok(
        address,
        &[
            "events",
            "append",
            "live",
            "--type",
            "After",
            "--data",
            r#"{"n":1}"#,
        ],
    );
    let line = lines
        .recv_timeout(wait)
        .expect("the event appended after tail started");
    let live: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(live["event_type"], "After");
    assert_eq!(live["version"], 1);
    assert_eq!(live["data"]["n"], 1);

    // Ctrl-C (SIGINT to its PID) ends it with status 0.
    let pid = tail.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(sent.success());
    let status = tail.wait().unwrap();
    assert_eq!(status.code(), Some(0), "tail after SIGINT: {status:?}");
    assert!(lines.try_recv().is_err(), "no other event");
    // stderr is a pipe here, not a terminal: no spinner, nothing at all.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut tail.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr, "", "tail wrote to a non-terminal stderr");

    // Table mode, from now on only: a header line, then each new event as a row.
    let mut tail = command(address, &["events", "tail", "live", "--from", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut tail);
    let header = lines.recv_timeout(wait).expect("header");
    assert!(header.starts_with("VERSION"), "{header}");
    ok(
        address,
        &[
            "events",
            "append",
            "live",
            "--type",
            "Third",
            "--data",
            r#"{"n":2}"#,
        ],
    );
    let row = lines.recv_timeout(wait).expect("row");
    assert!(row.contains("Third") && row.contains(r#"{"n":2}"#), "{row}");
    tail.kill().unwrap();
    tail.wait().unwrap();
}

const ORDER_SAGA: &str = r#"{
  "name": "cli_order",
  "steps": [
    {"name": "reserve", "service": "cli_inventory", "action": "reserve",
     "compensation": "release", "timeout_seconds": 10},
    {"name": "charge", "service": "cli_payment", "action": "charge", "timeout_ms": 10000,
     "retry_policy": {"initial_interval_ms": 10, "maximum_attempts": 2}}
  ],
  "input": {"order": 42}
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saga_start_ls_show_and_cancel() {
    let server = SyrosServer::start();
    let address = &server.grpc_address();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("order.json");
    std::fs::write(&file, ORDER_SAGA).unwrap();
    let file = file.to_str().unwrap();

    // No step runner yet: the saga waits in its first step; cancel ends it.
    let started = json(address, &["saga", "start", file]);
    let waiting_id = started["saga_id"].as_str().unwrap().to_string();
    assert_eq!(started["name"], "cli_order");
    assert_eq!(started["input"]["order"], 42);
    assert_eq!(started["steps"].as_array().unwrap().len(), 2);
    let running = json(address, &["saga", "ls", "--state", "running"]);
    assert!(
        running["sagas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["saga_id"] == waiting_id.as_str()),
        "{running}"
    );
    let cancelled = json(address, &["saga", "cancel", &waiting_id]);
    assert_eq!(cancelled["saga_id"], waiting_id.as_str());
    assert_eq!(cancelled["state"], "cancelled");

    // Step runners: reserve succeeds, charge always fails, so reserve is compensated.
    let client = client(&server).await;
    let inventory = client
        .worker("cli_inventory")
        .handler("reserve", |_task| async {
            Ok(r#"{"reserved":1}"#.to_string())
        })
        .handler("release", |_task| async { Ok("{}".to_string()) })
        .start()
        .unwrap();
    let payment = client
        .worker("cli_payment")
        .handler("charge", |_task| async {
            Err(TaskFailure::retryable("CardDeclined", "card 4242 declined"))
        })
        .start()
        .unwrap();
    let ended = json(
        address,
        &["saga", "start", file, "--wait", "--wait-timeout", "60s"],
    );
    let id = ended["saga_id"].as_str().unwrap().to_string();
    assert_eq!(ended["state"], "compensated", "{ended}");
    let shown = json(address, &["saga", "show", &id]);
    assert_eq!(shown["state"], "compensated");
    assert_eq!(shown["steps"][0]["output"]["reserved"], 1, "{shown}");
    let charge_attempts = shown["steps"][1]["attempts"].as_array().unwrap();
    assert_eq!(charge_attempts.len(), 2, "{shown}");
    assert_eq!(charge_attempts[1]["error_type"], "CardDeclined");
    assert_eq!(charge_attempts[1]["error_message"], "card 4242 declined");
    let kinds: Vec<_> = shown["steps"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["action", "compensation"], "{shown}");
    let table = ok(address, &["saga", "show", &id]);
    for expected in [
        "compensated",
        "reserve",
        "charge",
        "ATTEMPT",
        "card 4242 declined",
    ] {
        assert!(table.contains(expected), "{expected} missing from\n{table}");
    }
    let table = ok(address, &["saga", "ls"]);
    assert!(
        table.contains(&id) && table.contains(&waiting_id),
        "{table}"
    );
    let compensated = json(address, &["saga", "ls", "--state", "compensated"]);
    let ids: Vec<_> = compensated["sagas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["saga_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, std::slice::from_ref(&id));
    inventory.stop().await;
    payment.stop().await;

    let err = fails(address, &["saga", "show", "no-such-saga"], 2);
    assert_eq!(err["error"]["code"], "not_found");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"name": "x", "stepz": []}"#).unwrap();
    let err = fails(address, &["saga", "start", bad.to_str().unwrap()], 1);
    assert_eq!(err["error"]["code"], "invalid_argument");
    // The REST body's rules: a timeout in ms or in seconds, not both.
    std::fs::write(
        &bad,
        r#"{"name": "x", "steps": [{"name": "a", "service": "s", "action": "a",
             "timeout_ms": 1000, "timeout_seconds": 1}]}"#,
    )
    .unwrap();
    let err = fails(address, &["saga", "start", bad.to_str().unwrap()], 1);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not both"),
        "{err}"
    );

    // From stdin, with an idempotency key: the second start returns the same saga.
    let keyed = ORDER_SAGA.replacen('{', r#"{"idempotency_key": "cli-order-7","#, 1);
    let start_from_stdin = || {
        let mut child = command(address, &["saga", "start", "-", "--output", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(keyed.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = start_from_stdin();
    assert_eq!(first["idempotency_key"], "cli-order-7");
    assert_eq!(start_from_stdin()["saga_id"], first["saga_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_an_unreachable_server() {
    let server = SyrosServer::start();
    let address = &server.grpc_address();
    let health = json(address, &["health"]);
    assert_eq!(health["status"], "serving");
    assert_eq!(health["address"], address.as_str());
    assert!(ok(address, &["health"]).contains("is serving"));

    // A port nothing listens on: exit 5 for health and any other command, once the retries
    // of the time budget are spent (deadline_exceeded, the last attempt unavailable).
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    for args in [
        vec!["health", "--timeout", "1s"],
        vec!["lock", "ls", "--timeout", "1s"],
    ] {
        let err = fails(&closed, &args, 5);
        let unavailable = err["error"]["code"] == "unavailable"
            || err["error"]["details"]["last_error_code"] == "unavailable";
        assert!(unavailable, "{err}");
    }
    // Failover: the dead address first, the live one second.
    let both = format!("{closed},{address}");
    assert_eq!(json(&both, &["health"])["address"], address.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_wait_retries_until_the_server_is_back() {
    let mut server = SyrosServer::start();
    let address = server.grpc_address();
    server.kill9();
    let health = command(&address, &["health", "--wait", "120s", "--output", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Same ports: the waiting command finds it once it serves again.
    server.restart();
    let out = health.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(document["status"], "serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_client_certificates() {
    let pki = security_support::pki();
    let server = SyrosServer::builder()
        .env("TLS_CERT_FILE", pki.server_cert.display().to_string())
        .env("TLS_KEY_FILE", pki.server_key.display().to_string())
        .env("TLS_CLIENT_CA_FILE", pki.ca.display().to_string())
        .start();
    let address = format!("localhost:{}", server.grpc_addr().port());
    let (ca, cert, key) = (
        pki.ca.to_str().unwrap(),
        pki.client_cert.to_str().unwrap(),
        pki.client_key.to_str().unwrap(),
    );
    let tls = [
        "--tls-ca-file",
        ca,
        "--tls-client-cert",
        cert,
        "--tls-client-key",
        key,
    ];
    fn with<'a>(args: &[&'a str], tls: &[&'a str]) -> Vec<&'a str> {
        [args, tls].concat()
    }
    let with_tls = |args: &[&'static str]| with(args, &tls);
    assert_eq!(json(&address, &with_tls(&["health"]))["status"], "serving");
    ok(&address, &with_tls(&["cache", "set", "k", "over tls"]));
    assert_eq!(
        json(&address, &with_tls(&["cache", "get", "k"]))["value"],
        "over tls"
    );
    // The server's name checked against --tls-server-name: a wrong one is refused.
    let mut wrong_name = with_tls(&["health", "--timeout", "1s"]);
    wrong_name.extend(["--tls-server-name", "other.example"]);
    assert_ne!(syros(&address, &wrong_name).status.code(), Some(0));
    // Plaintext to a TLS port, or TLS without the client certificate: no connection.
    fails(&address, &["health", "--timeout", "1s"], 5);
    fails(
        &address,
        &["health", "--timeout", "1s", "--tls-ca-file", ca],
        5,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_when_the_server_requires_them() {
    use security_support::{create_api_key, token, SECRET};
    let server = SyrosServer::builder().env("JWT_SECRET", SECRET).start();
    let address = &server.grpc_address();

    let err = fails(address, &["cache", "get", "k"], 4);
    assert_eq!(err["error"]["code"], "unauthenticated");
    let err = fails(address, &["cache", "get", "k", "--token", "not-a-token"], 4);
    assert_eq!(err["error"]["code"], "unauthenticated");

    let reader = token("cli-reader", &["reader"]);
    // Authenticated: the key is simply absent.
    fails(address, &["cache", "get", "k", "--token", &reader], 2);
    let err = fails(address, &["cache", "set", "k", "v", "--token", &reader], 4);
    assert_eq!(err["error"]["code"], "permission_denied");

    // An API key through the environment.
    let (_, api_key) = create_api_key(&server, "cli-test", &["writer"]);
    let out = command(address, &["cache", "set", "k", "v"])
        .env("SYROS_TOKEN", &api_key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let entry = json(address, &["cache", "get", "k", "--token", &reader]);
    assert_eq!(entry["value"], "v");
}

#[test]
fn help_for_every_command_and_usage_errors() {
    let commands: &[&[&str]] = &[
        &[],
        &["lock"],
        &["lock", "ls"],
        &["lock", "status"],
        &["lock", "release"],
        &["cache"],
        &["cache", "get"],
        &["cache", "set"],
        &["cache", "delete"],
        &["cache", "invalidate-tag"],
        &["events"],
        &["events", "append"],
        &["events", "read"],
        &["events", "tail"],
        &["saga"],
        &["saga", "start"],
        &["saga", "ls"],
        &["saga", "show"],
        &["saga", "cancel"],
        &["health"],
    ];
    for path in commands {
        let mut args = path.to_vec();
        args.push("--help");
        let out = Command::new(syros_bin()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let help = text(&out.stdout);
        let usage = format!("Usage: syros {}", path.join(" "));
        assert!(help.contains(usage.trim_end()), "{args:?}:\n{help}");
        assert!(
            help.contains("Examples:"),
            "{args:?} has no examples:\n{help}"
        );
        if !path.is_empty() {
            assert!(help.contains("--output"), "{args:?}:\n{help}");
        }
    }
    // Usage errors exit 1 with clap's message on stderr.
    for args in [
        &["lock", "release", "k"][..],
        &["saga", "ls", "--state", "bogus"],
        &[
            "events",
            "append",
            "s",
            "--type",
            "T",
            "--expected-version",
            "-1",
        ],
        &["cache"],
        &["no-such-command"],
    ] {
        let out = Command::new(syros_bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
