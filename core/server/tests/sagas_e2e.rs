//! Sagas end to end over gRPC: a step runner in this process (raw gRPC, reconnecting), a real
//! `syros serve` that is killed with SIGKILL and restarted while 20 credit transfers are in
//! flight, on the embedded backend and on Redis + PostgreSQL.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use syros_proto::syros::v1 as pb;

const ACCOUNTS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const OPENING_BALANCE: i64 = 100;

/// The accounts the credit-transfer handlers move money between. Each effect is applied at most
/// once per task idempotency key, which is what makes at-least-once delivery safe.
#[derive(Default)]
struct Bank {
    balances: Mutex<HashMap<String, i64>>,
    applied: Mutex<HashSet<String>>,
}

impl Bank {
    fn open() -> Arc<Bank> {
        let bank = Bank::default();
        for account in ACCOUNTS {
            bank.balances
                .lock()
                .unwrap()
                .insert(account.to_string(), OPENING_BALANCE);
        }
        Arc::new(bank)
    }

    fn total(&self) -> i64 {
        self.balances.lock().unwrap().values().sum()
    }

    /// Run one task; `Err((type, non_retryable))` to fail it.
    fn handle(&self, task: &pb::StepTask) -> Result<String, (String, bool)> {
        let input: serde_json::Value = serde_json::from_str(&task.input_json).unwrap();
        let amount = input["amount"].as_i64().unwrap();
        let (from, to) = (
            input["from"].as_str().unwrap(),
            input["to"].as_str().unwrap(),
        );
        let key = task.idempotency_key.to_string();
        let action_key = |step: &str| format!("{}/{step}/action", task.saga_id);
        let mut applied = self.applied.lock().unwrap();
        let mut balances = self.balances.lock().unwrap();
        if applied.contains(&key) {
            return Ok("{\"duplicate\":true}".into());
        }
        match task.handler.as_str() {
            "debit" => {
                let balance = balances.get_mut(from).unwrap();
                if *balance < amount {
                    return Err(("insufficient_funds".into(), true));
                }
                *balance -= amount;
            }
            "credit" => *balances.get_mut(to).unwrap() += amount,
            // Compensations undo only what happened.
            "refund" if applied.contains(&action_key("debit")) => {
                *balances.get_mut(from).unwrap() += amount
            }
            "reverse_credit" if applied.contains(&action_key("credit")) => {
                *balances.get_mut(to).unwrap() -= amount
            }
            "refund" | "reverse_credit" => {}
            other => return Err((format!("unknown handler {other}"), true)),
        }
        applied.insert(key);
        Ok(format!("{{\"applied\":\"{}\"}}", task.handler))
    }
}

/// A step runner for service "bank": polls, runs, reports; reconnects whenever the server goes.
fn run_worker(addr: SocketAddr, bank: Arc<Bank>, worker_id: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let client = pb::SagaServiceClientBuilder::new("syros")
                .address(addr)
                .build();
            let feed = client
                .poll_tasks(pb::PollTasksRequest {
                    service: "bank".into(),
                    worker_id: worker_id.clone().into(),
                    max_concurrent: 4,
                })
                .await;
            if let Ok(feed) = feed {
                let mut feed = feed.into_inner();
                while let Some(Ok(task)) = feed.next().await {
                    // Work takes a while, so crashes land while tasks are in flight.
                    tokio::time::sleep(Duration::from_millis(80)).await;
                    let outcome = bank.handle(&task);
                    // A report lost to a crash is fine: the task times out and comes back.
                    let _ = match outcome {
                        Ok(output) => client
                            .complete_task(pb::CompleteTaskRequest {
                                task_id: task.task_id.clone(),
                                output_json: output.into(),
                            })
                            .await
                            .map(|_| ()),
                        Err((error_type, non_retryable)) => client
                            .fail_task(pb::FailTaskRequest {
                                task_id: task.task_id.clone(),
                                error_type: error_type.into(),
                                error_message: "handler failed".into(),
                                non_retryable,
                            })
                            .await
                            .map(|_| ()),
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

fn transfer(from: &str, to: &str, amount: i64, key: String) -> pb::StartSagaRequest {
    let step = |name: &str, action: &str, compensation: &str| pb::SagaStepDefinition {
        name: name.to_string().into(),
        service: "bank".into(),
        action: action.to_string().into(),
        compensation: compensation.to_string().into(),
        timeout_seconds: 1,
        retry_policy: None,
    };
    pb::StartSagaRequest {
        name: "credit_transfer".into(),
        steps: vec![
            step("debit", "debit", "refund"),
            step("credit", "credit", "reverse_credit"),
        ],
        input_json: serde_json::json!({"from": from, "to": to, "amount": amount})
            .to_string()
            .into(),
        idempotency_key: key.into(),
        retry_policy: Some(pb::RetryPolicy {
            initial_interval_ms: 100,
            backoff_coefficient: 2.0,
            maximum_interval_ms: 1_000,
            maximum_attempts: 20,
            non_retryable_errors: vec![],
        }),
    }
}

/// A tiny deterministic generator (the seed is printed, so a failure can be replayed).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

async fn crash_recovery(env: Vec<(&'static str, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_with(dir.path(), &env).await;
    let bank = Bank::open();
    let opening_total = bank.total();
    let workers: Vec<_> = (0..2)
        .map(|i| {
            run_worker(
                server.addr,
                bank.clone(),
                format!("worker-{i}-{}", std::process::id()),
            )
        })
        .collect();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash-recovery seed {seed}");
    let mut rng = Lcg(seed);
    let client = pb::SagaServiceClientBuilder::new("syros")
        .address(server.addr)
        .build();
    let mut saga_ids = Vec::new();
    for i in 0..20 {
        let from = ACCOUNTS[rng.next(4) as usize];
        let to = ACCOUNTS
            [(ACCOUNTS.iter().position(|a| *a == from).unwrap() + 1 + rng.next(3) as usize) % 4];
        // Some transfers are larger than any balance can be: those must be compensated.
        let amount = if i % 5 == 4 {
            10_000
        } else {
            1 + rng.next(60) as i64
        };
        let saga = client
            .start(transfer(from, to, amount, format!("transfer-{i}")))
            .await
            .unwrap()
            .into_inner();
        saga_ids.push(saga.saga_id.to_string());
    }

    for crash in 0..5 {
        tokio::time::sleep(Duration::from_millis(50 + rng.next(400))).await;
        if crash == 0 {
            let running = client
                .list(pb::ListSagasRequest {
                    state: pb::SagaState::RUNNING,
                    name: "credit_transfer".into(),
                    limit: 100,
                    page_token: "".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .sagas
                .len();
            assert!(running > 0, "the first crash must hit sagas in flight");
            println!("crash 0 with {running} sagas running");
        }
        server.kill9();
        println!("crash {crash}: killed");
        server.restart();
    }

    // Every saga reaches a final state, and money is neither made nor lost.
    let client = pb::SagaServiceClientBuilder::new("syros")
        .address(server.addr)
        .build();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut finals = HashMap::new();
    while finals.len() < saga_ids.len() {
        assert!(
            Instant::now() < deadline,
            "sagas still unfinished: {:?}",
            saga_ids
                .iter()
                .filter(|id| !finals.contains_key(*id))
                .collect::<Vec<_>>()
        );
        for id in &saga_ids {
            if finals.contains_key(id) {
                continue;
            }
            if let Ok(saga) = client
                .get(pb::GetSagaRequest {
                    saga_id: id.clone().into(),
                })
                .await
            {
                let saga = saga.into_inner();
                if [
                    pb::SagaState::COMPLETED,
                    pb::SagaState::COMPENSATED,
                    pb::SagaState::COMPENSATION_FAILED,
                    pb::SagaState::CANCELLED,
                ]
                .contains(&saga.state)
                {
                    finals.insert(id.clone(), saga);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for worker in workers {
        worker.abort();
    }
    let mut completed = 0;
    for (id, saga) in &finals {
        assert!(
            saga.state == pb::SagaState::COMPLETED || saga.state == pb::SagaState::COMPENSATED,
            "saga {id} ended {:?}: {}",
            saga.state,
            saga.error
        );
        if saga.state == pb::SagaState::COMPLETED {
            completed += 1;
        }
    }
    assert!(completed > 0, "some transfers must go through");
    assert!(
        completed < 20,
        "the oversized transfers must be compensated"
    );
    assert_eq!(
        bank.total(),
        opening_total,
        "the credit-transfer invariant: total balance unchanged"
    );
    assert!(bank.balances.lock().unwrap().values().all(|b| *b >= 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credit_transfers_survive_crashes_embedded() {
    crash_recovery(Vec::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credit_transfers_survive_crashes_redis_postgres() {
    let required = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name} is not set: run through scripts/test"))
    };
    let namespace = format!("c{}", std::process::id());
    crash_recovery(vec![
        ("REDIS_URL", required("SYROS_TEST_REDIS_URL")),
        ("DATABASE_URL", required("SYROS_TEST_DATABASE_URL")),
        ("SYROS_NAMESPACE", namespace),
    ])
    .await;
}
