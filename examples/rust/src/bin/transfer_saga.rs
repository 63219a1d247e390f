//! A credit transfer as a saga (the Syntropy seed's use): debit one account, credit another;
//! if the credit fails, the debit is refunded. Handlers record each effect under the task's
//! idempotency key, so redelivery never moves money twice. Checks that money is conserved.
//!
//! ```sh
//! cargo run -p syros-server -- serve &
//! cargo run -p syros-examples --bin transfer_saga            # or: -- 127.0.0.1:PORT
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use syros_client::{
    Client, ClientOptions, SagaState, StartSaga, StepDefinition, Task, TaskFailure,
};

#[derive(Default)]
struct Ledger {
    balances: HashMap<String, i64>,
    applied: HashSet<String>,
}

type Shared = Arc<Mutex<Ledger>>;

fn transfer(from: &str, to: &str, amount: i64) -> StartSaga {
    StartSaga {
        name: "credit_transfer".into(),
        steps: vec![
            StepDefinition::new("debit", "ledger", "debit").compensation("refund"),
            StepDefinition::new("credit", "ledger", "credit").compensation("reverse_credit"),
        ],
        input_json: json!({"from": from, "to": to, "amount": amount}).to_string(),
        idempotency_key: None,
        retry: None,
    }
}

/// Apply `change` to an account once per idempotency key.
fn apply(
    ledger: &Shared,
    task: &Task,
    account_field: &str,
    sign: i64,
) -> Result<String, TaskFailure> {
    let input: Value = serde_json::from_str(&task.input_json)
        .map_err(|e| TaskFailure::fatal("bad_input", e.to_string()))?;
    let account = input[account_field]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let amount = input["amount"].as_i64().unwrap_or(0);
    let mut ledger = ledger.lock().unwrap();
    if ledger.applied.contains(&task.idempotency_key) {
        return Ok(json!({"duplicate": true}).to_string());
    }
    // A compensation undoes only an action that happened.
    if task.is_compensation
        && !ledger
            .applied
            .contains(&task.idempotency_key.replace("/compensation", "/action"))
    {
        return Ok("{}".into());
    }
    let ledger = &mut *ledger;
    let Some(balance) = ledger.balances.get_mut(&account) else {
        return Err(TaskFailure::fatal("no_such_account", account));
    };
    if *balance + sign * amount < 0 {
        return Err(TaskFailure::fatal(
            "insufficient_funds",
            format!("{account} has {balance}"),
        ));
    }
    *balance += sign * amount;
    let balance = *balance;
    ledger.applied.insert(task.idempotency_key.clone());
    Ok(json!({"account": account, "balance": balance}).to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    let client = Client::connect(ClientOptions::new([address.as_str()]))
        .await
        .with_context(|| format!("cannot reach syros at {address}"))?;
    let ledger: Shared = Arc::default();
    ledger
        .lock()
        .unwrap()
        .balances
        .extend([("alice".to_string(), 100), ("bob".to_string(), 50)]);
    let total_before: i64 = ledger.lock().unwrap().balances.values().sum();

    let (l1, l2, l3, l4) = (
        ledger.clone(),
        ledger.clone(),
        ledger.clone(),
        ledger.clone(),
    );
    let worker = client
        .worker("ledger")
        .handler("debit", move |t| {
            let l = l1.clone();
            async move { apply(&l, &t, "from", -1) }
        })
        .handler("credit", move |t| {
            let l = l2.clone();
            async move { apply(&l, &t, "to", 1) }
        })
        .handler("refund", move |t| {
            let l = l3.clone();
            async move { apply(&l, &t, "from", 1) }
        })
        .handler("reverse_credit", move |t| {
            let l = l4.clone();
            async move { apply(&l, &t, "to", -1) }
        })
        .start()?;

    let sagas = client.sagas();
    let ok = sagas.start(transfer("alice", "bob", 30)).await?;
    let too_much = sagas.start(transfer("bob", "alice", 500)).await?;
    let to_nobody = sagas.start(transfer("alice", "nobody", 10)).await?;
    let mut states = Vec::new();
    for saga in [ok, too_much, to_nobody] {
        let done = sagas.wait(&saga.saga_id, Duration::from_secs(30)).await?;
        println!(
            "{} -> {} {}",
            done.input_json,
            done.state.as_str(),
            done.error.as_deref().unwrap_or("")
        );
        states.push(done.state);
    }
    worker.stop().await;
    let balances = ledger.lock().unwrap().balances.clone();
    let total_after: i64 = balances.values().sum();
    println!("balances: {balances:?} (total {total_before} -> {total_after})");
    ensure!(
        states
            == [
                SagaState::Completed,
                SagaState::Compensated,
                SagaState::Compensated
            ],
        "unexpected outcomes {states:?}"
    );
    ensure!(
        total_after == total_before,
        "money was created or destroyed"
    );
    ensure!(
        balances["alice"] == 70 && balances["bob"] == 80,
        "wrong balances"
    );
    Ok(())
}
