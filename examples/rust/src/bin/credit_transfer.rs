//! Credit transfer: concurrent transfers between accounts kept as event streams.
//!
//! - **Events**: every account is a stream (`Opened`, `Debited`, `Credited`); appends use the
//!   expected version, so a stale writer gets a version conflict instead of overwriting.
//! - **Locks**: a transfer holds the leases of both accounts (taken in a fixed order, so two
//!   opposite transfers cannot deadlock) and stamps its fencing tokens on the events it writes.
//! - **Cache**: balances are cached with `get_or_compute` (folded from the stream on a miss) and
//!   invalidated by tag after each transfer.
//! - A subscription to all streams prints every event as it is committed.
//!
//! Run `syros serve` first, then:
//!
//! ```text
//! cargo run -p syros-examples --bin credit_transfer -- [ADDRESS]   # default 127.0.0.1:9090
//! ```
//!
//! It exits non-zero if money was created or destroyed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use syros_client::{
    Client, ClientOptions, Direction, ErrorKind, EventData, ExpectedVersion, ReadFrom, SetOptions,
    SubscribeFrom,
};

const ACCOUNTS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const OPENING_BALANCE: i64 = 100;
const WORKERS: usize = 6;
const TRANSFERS_PER_WORKER: usize = 5;

/// One run's names, so that runs against the same server do not mix.
#[derive(Clone)]
struct Bank {
    client: Client,
    run: String,
}

impl Bank {
    fn stream(&self, account: &str) -> String {
        format!("account-{}-{account}", self.run)
    }

    fn balance_key(&self, account: &str) -> String {
        format!("balance/{}/{account}", self.run)
    }

    fn tag(&self) -> String {
        format!("balances-{}", self.run)
    }

    /// Fold the account's stream into (balance, last version).
    async fn fold(&self, account: &str) -> Result<(i64, u64)> {
        let read = self
            .client
            .events()
            .read_stream(
                &self.stream(account),
                ReadFrom::At(0),
                Direction::Forwards,
                10_000,
            )
            .await?;
        let mut balance = 0;
        for event in &read.events {
            let data: serde_json::Value = serde_json::from_str(&event.data_json)?;
            let amount = data["amount"].as_i64().context("event without amount")?;
            match event.event_type.as_str() {
                "Opened" | "Credited" => balance += amount,
                "Debited" => balance -= amount,
                other => bail!("unknown event type {other}"),
            }
        }
        Ok((balance, read.last))
    }

    /// The balance, from the cache or computed once (single-flight) from the stream.
    async fn balance(&self, account: &str) -> Result<i64> {
        let bank = self.clone();
        let account_owned = account.to_string();
        let bytes = self
            .client
            .cache()
            .get_or_compute_with(
                &self.balance_key(account),
                SetOptions::ttl(Duration::from_secs(60)).tag(self.tag()),
                move || async move {
                    bank.fold(&account_owned)
                        .await
                        .map(|(balance, _)| balance.to_string())
                        .map_err(|err| err.to_string())
                },
            )
            .await?;
        Ok(std::str::from_utf8(&bytes)?.parse()?)
    }

    /// Move `amount` from one account to another under both accounts' locks.
    async fn transfer(&self, from: &str, to: &str, amount: i64) -> Result<bool> {
        // A fixed lock order: no deadlock between opposite transfers.
        let (first, second) = if from < to { (from, to) } else { (to, from) };
        let lock = |account: &str| {
            self.client
                .lock(format!("lock/{}/{account}", self.run))
                .ttl(Duration::from_secs(5))
                .wait(Duration::from_secs(30))
        };
        let lease_a = lock(first).acquire().await?;
        let lease_b = lock(second).acquire().await?;

        let (balance, from_version) = self.fold(from).await?;
        let done = if balance < amount {
            false
        } else {
            let (_, to_version) = self.fold(to).await?;
            let fencing = format!(
                "{{\"fencing_tokens\":[{},{}]}}",
                lease_a.fencing_token(),
                lease_b.fencing_token()
            );
            let events = self.client.events();
            let body = format!("{{\"amount\":{amount},\"from\":\"{from}\",\"to\":\"{to}\"}}");
            events
                .append(
                    &self.stream(from),
                    vec![EventData::new("Debited", body.clone()).with_metadata(fencing.clone())],
                    ExpectedVersion::Exact(from_version),
                )
                .await?;
            events
                .append(
                    &self.stream(to),
                    vec![EventData::new("Credited", body).with_metadata(fencing)],
                    ExpectedVersion::Exact(to_version),
                )
                .await?;
            self.client.cache().invalidate_tag(&self.tag()).await?;
            true
        };
        if lease_a.is_lost() || lease_b.is_lost() {
            bail!("a lease was lost during the transfer; the fencing tokens tell the truth");
        }
        lease_b.release().await?;
        lease_a.release().await?;
        Ok(done)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9090".to_string());
    let client = Client::connect(ClientOptions::new([address.clone()]))
        .await
        .with_context(|| format!("cannot reach syros at {address}: is `syros serve` running?"))?;
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string();
    let bank = Bank {
        client: client.clone(),
        run,
    };
    println!(
        "connected to {} as {}",
        client.current_address(),
        client.owner()
    );

    // Print every event of this run as it is committed.
    let prefix = format!("account-{}-", bank.run);
    let mut feed = client.events().subscribe_all(SubscribeFrom::End).await?;
    let seen = Arc::new(AtomicUsize::new(0));
    let printer = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(event) = feed.next().await {
                let event = event?;
                if !event.stream.starts_with(&prefix) {
                    continue;
                }
                seen.fetch_add(1, Ordering::SeqCst);
                println!(
                    "  #{:<4} {:<8} {:<28} v{} {}",
                    event.global_position,
                    event.event_type,
                    event.stream,
                    event.version,
                    event.data_json
                );
            }
            Ok::<(), syros_client::Error>(())
        })
    };

    for account in ACCOUNTS {
        let opened = client
            .events()
            .append(
                &bank.stream(account),
                vec![EventData::new(
                    "Opened",
                    format!("{{\"amount\":{OPENING_BALANCE}}}"),
                )],
                ExpectedVersion::NoStream,
            )
            .await;
        match opened {
            Ok(_) => {}
            Err(err) if err.kind == ErrorKind::VersionConflict => bail!("account exists: {err}"),
            Err(err) => return Err(err.into()),
        }
    }

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let bank = bank.clone();
        workers.push(tokio::spawn(async move {
            let mut declined = 0;
            for i in 0..TRANSFERS_PER_WORKER {
                let from = ACCOUNTS[(worker + i) % ACCOUNTS.len()];
                let to = ACCOUNTS[(worker + 2 * i + 1) % ACCOUNTS.len()];
                let to = if to == from {
                    ACCOUNTS[(worker + i + 1) % ACCOUNTS.len()]
                } else {
                    to
                };
                let amount = 10 + (worker as i64 * 7 + i as i64 * 13) % 40;
                if !bank.transfer(from, to, amount).await? {
                    declined += 1;
                }
            }
            anyhow::Ok(declined)
        }));
    }
    let mut declined = 0;
    for worker in workers {
        declined += worker.await??;
    }

    let mut balances = BTreeMap::new();
    for account in ACCOUNTS {
        balances.insert(account, bank.balance(account).await?);
    }
    let total: i64 = balances.values().sum();
    println!(
        "balances: {balances:?} (total {total}, {declined} transfers declined for lack of funds)"
    );

    // Every event written must reach the subscriber, once.
    let written = ACCOUNTS.len() + 2 * (WORKERS * TRANSFERS_PER_WORKER - declined);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.load(Ordering::SeqCst) < written && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    printer.abort();
    let delivered = seen.load(Ordering::SeqCst);
    println!("the subscription delivered {delivered} of {written} events");
    if delivered != written {
        bail!("the subscription delivered {delivered} events, {written} were written");
    }

    let expected = OPENING_BALANCE * ACCOUNTS.len() as i64;
    if total != expected {
        bail!("money was created or destroyed: total {total}, expected {expected}");
    }
    println!("ok: total balance conserved at {total}");
    Ok(())
}
