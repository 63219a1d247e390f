//! The seed's `order_fulfillment_saga`: reserve inventory, then charge payment; a declined card
//! releases the reservation. Inventory and payment workers run in this process, as they would in
//! two services.
//!
//! ```sh
//! cargo run -p syros-server -- serve &
//! cargo run -p syros-examples --bin order_saga            # or: -- 127.0.0.1:PORT
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use syros_client::{Client, ClientOptions, SagaState, StartSaga, StepDefinition, TaskFailure};

fn order(order_id: &str, sku: &str, quantity: u64, card: &str) -> StartSaga {
    StartSaga {
        name: "order_fulfillment_saga".into(),
        steps: vec![
            StepDefinition::new("reserve_inventory", "inventory_service", "reserve")
                .compensation("release_inventory")
                .timeout(Duration::from_secs(10)),
            StepDefinition::new("charge_payment", "payment_service", "charge")
                .compensation("refund_payment")
                .timeout(Duration::from_secs(15)),
        ],
        input_json: json!({"order_id": order_id, "sku": sku, "quantity": quantity, "card": card})
            .to_string(),
        // One saga per order, however often the caller retries.
        idempotency_key: Some(format!("order-{order_id}")),
        retry: None,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".into());
    let client = Client::connect(ClientOptions::new([address.as_str()]))
        .await
        .with_context(|| format!("cannot reach syros at {address}"))?;

    // The inventory service: stock per SKU; reservations recorded by idempotency key so a
    // redelivered task does not reserve twice.
    let stock = Arc::new(Mutex::new(HashMap::from([("sku-1".to_string(), 10u64)])));
    let reservations = Arc::new(Mutex::new(HashMap::<String, (String, u64)>::new()));
    let inventory = {
        let (stock, reservations) = (stock.clone(), reservations.clone());
        let (stock2, reservations2) = (stock.clone(), reservations.clone());
        client
            .worker("inventory_service")
            .handler("reserve", move |task| {
                let (stock, reservations) = (stock.clone(), reservations.clone());
                async move {
                    let input: Value = serde_json::from_str(&task.input_json).unwrap_or_default();
                    let (sku, quantity) = (
                        input["sku"].as_str().unwrap_or_default().to_string(),
                        input["quantity"].as_u64().unwrap_or(0),
                    );
                    let mut reservations = reservations.lock().unwrap();
                    if !reservations.contains_key(&task.idempotency_key) {
                        let mut stock = stock.lock().unwrap();
                        let available = stock.entry(sku.clone()).or_default();
                        if *available < quantity {
                            return Err(TaskFailure::fatal(
                                "out_of_stock",
                                format!("{sku}: {available} left"),
                            ));
                        }
                        *available -= quantity;
                        reservations.insert(task.idempotency_key.clone(), (sku, quantity));
                    }
                    Ok(json!({"reservation": task.idempotency_key}).to_string())
                }
            })
            .handler("release_inventory", move |task| {
                let (stock, reservations) = (stock2.clone(), reservations2.clone());
                async move {
                    let reservation = task.idempotency_key.replace("/compensation", "/action");
                    if let Some((sku, quantity)) = reservations.lock().unwrap().remove(&reservation)
                    {
                        *stock.lock().unwrap().entry(sku).or_default() += quantity;
                    }
                    Ok("{}".to_string())
                }
            })
            .start()?
    };
    let payment = client
        .worker("payment_service")
        .handler("charge", |task| async move {
            let input: Value = serde_json::from_str(&task.input_json).unwrap_or_default();
            if input["card"] == "declined" {
                return Err(TaskFailure::fatal("card_declined", "the bank said no"));
            }
            Ok(
                json!({"charge_id": format!("ch-{}", input["order_id"].as_str().unwrap_or("?"))})
                    .to_string(),
            )
        })
        .handler("refund_payment", |_| async { Ok("{}".to_string()) })
        .start()?;

    let sagas = client.sagas();
    let run = uuid_like();
    let paid = sagas
        .start(order(&format!("{run}-1"), "sku-1", 3, "visa"))
        .await?;
    let declined = sagas
        .start(order(&format!("{run}-2"), "sku-1", 4, "declined"))
        .await?;
    let paid = sagas.wait(&paid.saga_id, Duration::from_secs(30)).await?;
    let declined = sagas
        .wait(&declined.saga_id, Duration::from_secs(30))
        .await?;
    for saga in [&paid, &declined] {
        println!("{} {}: {}", saga.name, saga.saga_id, saga.state.as_str());
        for step in &saga.steps {
            println!(
                "  {:<18} {:<12} attempts={} output={}",
                step.name,
                step.state,
                step.attempts.len(),
                step.output_json.as_deref().unwrap_or("-")
            );
        }
    }
    let left = stock.lock().unwrap()["sku-1"];
    println!("sku-1 in stock: {left} (10 - 3 sold; the declined order's 4 were released)");
    ensure!(
        paid.state == SagaState::Completed,
        "the paid order must complete"
    );
    ensure!(
        declined.state == SagaState::Compensated,
        "the declined order must be compensated"
    );
    ensure!(left == 7, "stock must be 7, is {left}");
    inventory.stop().await;
    payment.stop().await;
    Ok(())
}

/// A short unique suffix so the example can run repeatedly against the same server.
fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}
