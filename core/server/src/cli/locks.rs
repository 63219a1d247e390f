//! `syros lock ls|status|release`.

use clap::Subcommand;
use serde::Serialize;
use syros_client::{Client, Error, ErrorKind, LeaseInfo};

use super::output::{self, OutputFormat};

/// Lock commands.
#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// List held locks, optionally only those whose key starts with PREFIX.
    #[command(after_help = "Examples:\n  syros lock ls\n  syros lock ls orders/ -o json")]
    Ls {
        /// Only keys starting with this.
        prefix: Option<String>,
        /// At most this many locks.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Who holds KEY, with its fencing token and expiry (a free key is reported as not held,
    /// with exit status 0).
    #[command(after_help = "Examples:\n  syros lock status orders/42")]
    Status {
        /// The lock's key.
        key: String,
    },
    /// Administrative release: drop whatever lease holds KEY (exit 2 if none does).
    ///
    /// The holder is not asked: its next renew or release fails with lock_not_held, and its
    /// fencing token is now stale. Not retried after a failure that may have reached the server
    /// (exit 6): check `lock status` before trying again.
    #[command(after_help = "Examples:\n  syros lock release orders/42 --force")]
    Release {
        /// The lock's key.
        key: String,
        /// Required: confirms that the holder's lease is dropped without asking it.
        #[arg(long, required = true)]
        force: bool,
    },
}

/// A lease in JSON output.
#[derive(Serialize)]
struct LeaseOut {
    key: String,
    owner: String,
    lease_id: String,
    fencing_token: u64,
    acquired_at_ms: i64,
    expires_at_ms: i64,
}

impl From<LeaseInfo> for LeaseOut {
    fn from(lease: LeaseInfo) -> Self {
        LeaseOut {
            key: lease.key,
            owner: lease.owner,
            lease_id: lease.lease_id,
            fencing_token: lease.fencing_token,
            acquired_at_ms: lease.acquired_at_ms,
            expires_at_ms: lease.expires_at_ms,
        }
    }
}

#[derive(Serialize)]
struct LockListOut {
    locks: Vec<LeaseOut>,
}

#[derive(Serialize)]
struct LockStatusOut {
    key: String,
    held: bool,
    lease: Option<LeaseOut>,
}

#[derive(Serialize)]
struct ReleasedOut {
    key: String,
    released: LeaseOut,
}

fn lease_rows(lease: &LeaseOut) -> Vec<(&'static str, String)> {
    vec![
        ("KEY", lease.key.clone()),
        ("OWNER", lease.owner.clone()),
        ("FENCING TOKEN", lease.fencing_token.to_string()),
        ("LEASE ID", lease.lease_id.clone()),
        ("ACQUIRED", output::timestamp(lease.acquired_at_ms)),
        (
            "EXPIRES",
            format!(
                "{} ({})",
                output::timestamp(lease.expires_at_ms),
                output::relative(lease.expires_at_ms)
            ),
        ),
    ]
}

/// Run a lock command.
pub async fn run(client: &Client, command: LockCommand, format: OutputFormat) -> Result<(), Error> {
    match command {
        LockCommand::Ls { prefix, limit } => {
            let locks: Vec<LeaseOut> = client
                .list_locks(prefix.as_deref().unwrap_or(""), limit)
                .await?
                .into_iter()
                .map(LeaseOut::from)
                .collect();
            match format {
                OutputFormat::Json => output::print_json(&LockListOut { locks }),
                OutputFormat::Table if locks.is_empty() => eprintln!("no lock is held"),
                OutputFormat::Table => {
                    let mut table =
                        output::table(["KEY", "OWNER", "FENCING TOKEN", "EXPIRES", "LEASE ID"]);
                    for lease in &locks {
                        table.add_row(vec![
                            lease.key.clone(),
                            lease.owner.clone(),
                            lease.fencing_token.to_string(),
                            output::relative(lease.expires_at_ms),
                            lease.lease_id.clone(),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
        }
        LockCommand::Status { key } => {
            let lease = client.lock_status(&key).await?.map(LeaseOut::from);
            match format {
                OutputFormat::Json => output::print_json(&LockStatusOut {
                    key,
                    held: lease.is_some(),
                    lease,
                }),
                OutputFormat::Table => match &lease {
                    Some(lease) => output::print_record(lease_rows(lease)),
                    None => println!("{key} is not held"),
                },
            }
        }
        LockCommand::Release { key, force: _ } => {
            let Some(lease) = client.force_release(&key).await? else {
                return Err(Error::new(
                    ErrorKind::LockNotHeld,
                    format!("no lease holds {key}"),
                ));
            };
            let released = LeaseOut::from(lease);
            match format {
                OutputFormat::Json => output::print_json(&ReleasedOut { key, released }),
                OutputFormat::Table => println!(
                    "released {} (owner {}, fencing token {}, lease {})",
                    released.key, released.owner, released.fencing_token, released.lease_id
                ),
            }
        }
    }
    Ok(())
}
