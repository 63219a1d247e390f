//! The Rust runner of the conformance scenarios: each scenario in `tests/conformance/scenarios`
//! against a fresh `syros serve`, through the binding API (the surface every SDK stands on).
//! Prints `PASS name` / `FAIL name: reason` per scenario and `N passed, N failed`; exits 1 when
//! any failed or none ran.
//!
//! Usage: `cargo run -p syros-conformance [-- SCENARIO_DIR] [NAME_FILTER]`
//! (`SYROS_BIN` names the server; `SYROS_TEST_BACKEND=redis-postgres` picks the backend).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use syros_binding_api::*;
use syros_launcher::SyrosServer;

type Outcome = std::result::Result<(), String>;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios"));
    let filter = args.next();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime for the runner");
    let backend = syros_launcher::Backend::from_env();
    let (mut passed, mut failed) = (0, 0);
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read scenario");
        let scenario: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(err) => {
                println!("FAIL {}: not valid JSON: {err}", file.display());
                failed += 1;
                continue;
            }
        };
        let name = scenario["name"].as_str().unwrap_or("unnamed").to_string();
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let started = Instant::now();
        let server = SyrosServer::builder().backend(backend.clone()).start();
        let mut run = Run::new(server, &name);
        let outcome = runtime.block_on(run.scenario(&scenario));
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("PASS {name} ({took:.1}s, {})", backend.name());
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {name} ({}): {reason}", backend.name());
            }
        }
        runtime.block_on(run.finish());
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    println!("{passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}

/// One scenario's state: its server, client and saved values.
struct Run {
    server: SyrosServer,
    id: String,
    client: Option<Arc<Client>>,
    leases: HashMap<String, Arc<Lease>>,
    pending: HashMap<String, rt::CoreTask<Arc<Lease>>>,
    subscriptions: HashMap<String, Arc<Subscription>>,
    saved: HashMap<String, Value>,
}

fn lease_value(lease: &Lease) -> Value {
    let info = lease.info();
    json!({"lease_id": info.lease_id, "fencing_token": info.fencing_token, "key": info.key})
}

fn text(step: &Value, name: &str) -> std::result::Result<String, String> {
    step[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("step {step} needs a string `{name}`"))
}

fn number(step: &Value, name: &str, default: u64) -> u64 {
    step[name].as_u64().unwrap_or(default)
}

/// Check a call's result against `expect.error` (or success when absent).
fn check_error<T>(step: &Value, result: Result<T>) -> std::result::Result<Option<T>, String> {
    let expected = step["expect"]["error"].as_str();
    match (result, expected) {
        (Ok(value), None) => Ok(Some(value)),
        (Ok(_), Some(code)) => Err(format!("expected error {code}, the call succeeded")),
        (Err(err), Some(code)) if err.code == code => Ok(None),
        (Err(err), Some(code)) => Err(format!("expected error {code}, got {err}")),
        (Err(err), None) => Err(format!("unexpected error {err}")),
    }
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(message())
    }
}

impl Run {
    fn new(server: SyrosServer, name: &str) -> Run {
        Run {
            server,
            id: format!("{name}-{}", std::process::id()),
            client: None,
            leases: HashMap::new(),
            pending: HashMap::new(),
            subscriptions: HashMap::new(),
            saved: HashMap::new(),
        }
    }

    async fn finish(&mut self) {
        self.pending.clear();
        for lease in self.leases.values() {
            let _ = lease.release().await;
        }
        for subscription in self.subscriptions.values() {
            subscription.close();
        }
        if let Some(client) = self.client.take() {
            client.close();
        }
    }

    fn client(&mut self) -> Arc<Client> {
        self.client
            .get_or_insert_with(|| {
                let mut config = ClientConfig::new(vec![self.server.grpc_address()]);
                config.connect_timeout_ms = 2_000;
                config.call_timeout_ms = 10_000;
                Client::new(config).expect("a valid client configuration")
            })
            .clone()
    }

    /// Replace `{id}` and `$name.field` references in a JSON value.
    fn resolve(&self, value: &Value) -> std::result::Result<Value, String> {
        Ok(match value {
            Value::String(s) if s.starts_with('$') => {
                let (name, field) = s[1..]
                    .split_once('.')
                    .ok_or_else(|| format!("reference {s} needs a field"))?;
                let saved = self
                    .saved
                    .get(name)
                    .ok_or_else(|| format!("nothing saved as {name}"))?;
                saved
                    .get(field)
                    .cloned()
                    .ok_or_else(|| format!("{name} has no field {field}"))?
            }
            Value::String(s) => Value::String(s.replace("{id}", &self.id)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.resolve(v))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                    .collect::<std::result::Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }

    async fn scenario(&mut self, scenario: &Value) -> Outcome {
        let steps = scenario["steps"]
            .as_array()
            .ok_or("a scenario needs `steps`")?;
        for (index, raw) in steps.iter().enumerate() {
            let step = self.resolve(raw)?;
            let op = step["op"].as_str().unwrap_or_default().to_string();
            self.step(&op, &step)
                .await
                .map_err(|reason| format!("step {} ({op}): {reason}", index + 1))?;
        }
        Ok(())
    }

    fn lease(&self, step: &Value, field: &str) -> std::result::Result<Arc<Lease>, String> {
        let name = text(step, field)?;
        self.leases
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("no lease saved as {name}"))
    }

    fn keep_lease(&mut self, step: &Value, lease: Arc<Lease>) {
        if let Some(name) = step["save"].as_str() {
            self.saved.insert(name.to_string(), lease_value(&lease));
            self.leases.insert(name.to_string(), lease);
        }
    }

    fn lock_request(step: &Value) -> LockRequest {
        LockRequest::new(number(step, "ttl_ms", 5_000), number(step, "wait_ms", 0))
    }

    async fn step(&mut self, op: &str, step: &Value) -> Outcome {
        let client = self.client();
        let expect = &step["expect"];
        match op {
            "lock" => {
                let result = client
                    .lock(text(step, "key")?, Self::lock_request(step))
                    .await;
                if let Some(lease) = check_error(step, result)? {
                    self.keep_lease(step, lease);
                }
            }
            "try_lock" => {
                let result = client
                    .try_lock(text(step, "key")?, Self::lock_request(step))
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(acquired) = expect["acquired"].as_bool() {
                    ensure(result.is_some() == acquired, || {
                        format!("expected acquired={acquired}")
                    })?;
                }
                if let Some(lease) = result {
                    self.keep_lease(step, lease);
                }
            }
            "lock_async" => {
                let task = client.lock(text(step, "key")?, Self::lock_request(step));
                self.pending.insert(text(step, "save")?, task);
            }
            "await_lease" => {
                let name = text(step, "name")?;
                let task = self
                    .pending
                    .remove(&name)
                    .ok_or_else(|| format!("nothing pending as {name}"))?;
                let within = Duration::from_millis(number(step, "within_ms", 5_000));
                let lease = tokio::time::timeout(within, task)
                    .await
                    .map_err(|_| format!("{name} was not granted within {within:?}"))?
                    .map_err(|e| e.to_string())?;
                let save = json!({"save": name});
                self.keep_lease(&save, lease);
            }
            "expect_pending" => {
                let name = text(step, "name")?;
                tokio::time::sleep(Duration::from_millis(number(step, "for_ms", 0))).await;
                let task = self
                    .pending
                    .get(&name)
                    .ok_or_else(|| format!("nothing pending as {name}"))?;
                ensure(!task.is_finished(), || {
                    format!("{name} was already granted (out of order)")
                })?;
            }
            "release" => self
                .lease(step, "lease")?
                .release()
                .await
                .map_err(|e| e.to_string())?,
            "renew" => {
                let result = self.lease(step, "lease")?.renew().await;
                check_error(step, result)?;
            }
            "lease_state" => {
                let lease = self.lease(step, "lease")?;
                if let Some(held) = expect["held"].as_bool() {
                    ensure(lease.is_held() == held, || format!("expected held={held}"))?;
                }
                if let Some(lost) = expect["lost"].as_bool() {
                    ensure(lease.is_lost() == lost, || format!("expected lost={lost}"))?;
                }
            }
            "wait_end" => {
                let lease = self.lease(step, "lease")?;
                let end = lease
                    .wait_end(Some(number(step, "timeout_ms", 1_000)))
                    .await
                    .map_err(|e| e.to_string())?;
                let name = match end {
                    LeaseEnd::Lost => "lost",
                    LeaseEnd::Released => "released",
                    LeaseEnd::TimedOut => "timed_out",
                };
                let wanted = expect["end"].as_str().unwrap_or_default();
                ensure(name == wanted, || {
                    format!("expected {wanted}, the wait ended {name}")
                })?;
            }
            "lock_status" => {
                let holder = client
                    .lock_status(text(step, "key")?)
                    .await
                    .map_err(|e| e.to_string())?;
                if expect["free"].as_bool() == Some(true) {
                    ensure(holder.is_none(), || {
                        format!("expected free, held by {holder:?}")
                    })?;
                }
                if let Some(id) = expect["lease_id"].as_str() {
                    let held = holder.map(|h| h.lease_id);
                    ensure(held.as_deref() == Some(id), || {
                        format!("expected lease {id}, holder {held:?}")
                    })?;
                }
            }
            "force_release" => {
                client
                    .force_release(text(step, "key")?)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            "cache_set" => {
                let value = match &step["value"] {
                    Value::String(s) => s.clone().into_bytes(),
                    Value::Object(spec) => {
                        let unit = spec["repeat"].as_str().unwrap_or("x");
                        let times = spec["times"].as_u64().unwrap_or(1) as usize;
                        unit.repeat(times).into_bytes()
                    }
                    other => return Err(format!("bad cache value {other}")),
                };
                let tags = step["tags"]
                    .as_array()
                    .map(|tags| {
                        tags.iter()
                            .filter_map(|t| t.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let set = CacheSet {
                    ttl_ms: step["ttl_ms"].as_u64(),
                    tags,
                };
                let result = client.cache_set(text(step, "key")?, value, set).await;
                check_error(step, result)?;
            }
            "cache_get" => {
                let entry = client
                    .cache_get(text(step, "key")?)
                    .await
                    .map_err(|e| e.to_string())?;
                if expect["missing"].as_bool() == Some(true) {
                    ensure(entry.is_none(), || "expected no value".to_string())?;
                }
                if let Some(wanted) = expect["value"].as_str() {
                    let got = entry.map(|e| String::from_utf8_lossy(&e.value).to_string());
                    ensure(got.as_deref() == Some(wanted), || {
                        format!("expected {wanted:?}, got {got:?}")
                    })?;
                }
            }
            "cache_invalidate_tag" => {
                let removed = client
                    .cache_invalidate_tag(text(step, "tag")?)
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(wanted) = expect["removed"].as_u64() {
                    ensure(removed == wanted, || {
                        format!("removed {removed}, expected {wanted}")
                    })?;
                }
            }
            "append" => {
                let expected = match &step["expected"] {
                    Value::Number(n) => ExpectedVersion::Exact(n.as_u64().unwrap_or_default()),
                    Value::String(name) => {
                        parse_expected_version(name).map_err(|e| e.to_string())?
                    }
                    _ => ExpectedVersion::Any,
                };
                let events = step["events"]
                    .as_array()
                    .ok_or("append needs events")?
                    .iter()
                    .map(|event| NewEvent {
                        event_id: None,
                        event_type: event["type"].as_str().unwrap_or("Event").to_string(),
                        data_json: event["data"].to_string(),
                        metadata_json: None,
                    })
                    .collect();
                let result = client.append(text(step, "stream")?, events, expected).await;
                if let Some(appended) = check_error(step, result)? {
                    if let Some(wanted) = expect["last_version"].as_u64() {
                        ensure(appended.last_version == wanted, || {
                            format!("last version {}, expected {wanted}", appended.last_version)
                        })?;
                    }
                }
            }
            "read" => {
                let read = client
                    .read(ReadRequest {
                        stream: Some(text(step, "stream")?),
                        start: Some(0),
                        backwards: false,
                        limit: 0,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let versions: Vec<Value> = read.events.iter().map(|e| json!(e.version)).collect();
                let types: Vec<Value> = read.events.iter().map(|e| json!(e.event_type)).collect();
                if let Some(wanted) = expect.get("versions") {
                    ensure(&Value::Array(versions.clone()) == wanted, || {
                        format!("versions {versions:?}, expected {wanted}")
                    })?;
                }
                if let Some(wanted) = expect.get("types") {
                    ensure(&Value::Array(types.clone()) == wanted, || {
                        format!("types {types:?}, expected {wanted}")
                    })?;
                }
            }
            "subscribe" => {
                let start = match &step["from"] {
                    Value::Number(n) => SubscribeStart::At(n.as_u64().unwrap_or_default()),
                    Value::String(name) => {
                        SubscribeStart::parse(name).map_err(|e| e.to_string())?
                    }
                    _ => SubscribeStart::Start,
                };
                let subscription = client
                    .subscribe(Some(text(step, "stream")?), start)
                    .await
                    .map_err(|e| e.to_string())?;
                self.subscriptions.insert(text(step, "save")?, subscription);
            }
            "next_events" => {
                let subscription = self.subscription(step)?;
                let deadline =
                    Instant::now() + Duration::from_millis(number(step, "timeout_ms", 5_000));
                let mut versions = Vec::new();
                while versions.len() < number(step, "count", 1) as usize {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let item = subscription
                        .next(Some(u64::try_from(left.as_millis()).unwrap_or(0).max(1)))
                        .await
                        .map_err(|e| e.to_string())?;
                    match item {
                        SubscriptionItem::Event(event) => versions.push(json!(event.version)),
                        SubscriptionItem::TimedOut => {
                            return Err(format!("only got versions {versions:?} in time"))
                        }
                        SubscriptionItem::Ended => return Err("the subscription ended".into()),
                    }
                }
                if let Some(wanted) = expect.get("versions") {
                    ensure(&Value::Array(versions.clone()) == wanted, || {
                        format!("versions {versions:?}, expected {wanted}")
                    })?;
                }
            }
            "expect_no_event" => {
                let subscription = self.subscription(step)?;
                match subscription
                    .next(Some(number(step, "within_ms", 500)))
                    .await
                    .map_err(|e| e.to_string())?
                {
                    SubscriptionItem::TimedOut => {}
                    other => return Err(format!("expected no event, got {other:?}")),
                }
            }
            "close" => self.subscription(step)?.close(),
            "start_saga" => {
                let steps = step["steps"]
                    .as_array()
                    .ok_or("start_saga needs steps")?
                    .iter()
                    .map(|s| StepDefinition {
                        name: s["name"].as_str().unwrap_or_default().to_string(),
                        service: s["service"].as_str().unwrap_or_default().to_string(),
                        action: s["action"].as_str().unwrap_or_default().to_string(),
                        compensation: s["compensation"].as_str().map(String::from),
                        timeout_ms: s["timeout_ms"].as_u64().unwrap_or(0),
                        retry: None,
                    })
                    .collect();
                let saga = client
                    .start_saga(StartSaga {
                        name: text(step, "name")?,
                        steps,
                        input_json: step["input"].to_string(),
                        idempotency_key: None,
                        retry: None,
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                if let Some(name) = step["save"].as_str() {
                    self.saved
                        .insert(name.to_string(), json!({"saga_id": saga.saga_id}));
                }
            }
            "run_worker" => self.run_worker(&client, step).await?,
            "compare" => {
                let left = step["left"]
                    .as_f64()
                    .ok_or("compare needs a numeric left")?;
                let right = step["right"]
                    .as_f64()
                    .ok_or("compare needs a numeric right")?;
                let cmp = step["cmp"].as_str().unwrap_or("==");
                let holds = match cmp {
                    ">" => left > right,
                    ">=" => left >= right,
                    "==" => left == right,
                    "!=" => left != right,
                    other => return Err(format!("unknown comparison {other}")),
                };
                ensure(holds, || format!("expected {left} {cmp} {right}"))?;
            }
            "sleep" => tokio::time::sleep(Duration::from_millis(number(step, "ms", 0))).await,
            "restart_server" => self.server.restart(),
            "stop_server" => self.server.kill9(),
            "start_server" => self.server.restart(),
            other => return Err(format!("unknown operation {other:?}")),
        }
        Ok(())
    }

    fn subscription(&self, step: &Value) -> std::result::Result<Arc<Subscription>, String> {
        let name = text(step, "subscription")?;
        self.subscriptions
            .get(&name)
            .cloned()
            .ok_or_else(|| format!("no subscription saved as {name}"))
    }

    async fn run_worker(&self, client: &Client, step: &Value) -> Outcome {
        let saga_id = text(step, "saga")?;
        let worker = client
            .worker(text(step, "service")?, 4)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + Duration::from_millis(number(step, "timeout_ms", 20_000));
        let mut calls = Vec::new();
        let state = loop {
            if Instant::now() > deadline {
                worker.stop();
                return Err(format!(
                    "the saga did not finish in time; calls so far {calls:?}"
                ));
            }
            if let Some(task) = worker
                .poll_task(Some(200))
                .await
                .map_err(|e| e.to_string())?
            {
                calls.push(json!(task.handler));
                let behaviour = &step["script"][&task.handler];
                let outcome = if let Some(output) = behaviour.get("complete") {
                    TaskOutcome::Completed {
                        output_json: output.to_string(),
                    }
                } else if let Some(failure) = behaviour.get("fail") {
                    TaskOutcome::Failed {
                        error_type: failure["error_type"].as_str().unwrap_or("failed").into(),
                        message: failure["message"].as_str().unwrap_or_default().into(),
                        non_retryable: failure["non_retryable"].as_bool().unwrap_or(false),
                    }
                } else {
                    worker.stop();
                    return Err(format!("the script has no behaviour for {}", task.handler));
                };
                worker
                    .complete(task.task_id, outcome)
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            let saga = client
                .get_saga(saga_id.clone())
                .await
                .map_err(|e| e.to_string())?;
            if saga.state.is_final() {
                break saga.state.as_str().to_string();
            }
        };
        worker.stop_and_drain().await.map_err(|e| e.to_string())?;
        let expect = &step["expect"];
        if let Some(wanted) = expect.get("calls") {
            ensure(&Value::Array(calls.clone()) == wanted, || {
                format!("handlers ran {calls:?}, expected {wanted}")
            })?;
        }
        if let Some(wanted) = expect["state"].as_str() {
            ensure(state == wanted, || {
                format!("saga ended {state}, expected {wanted}")
            })?;
        }
        Ok(())
    }
}
