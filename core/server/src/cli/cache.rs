//! `syros cache get|set|delete|invalidate-tag`.

use std::io::{Read, Write};

use base64::Engine as _;
use clap::Subcommand;
use serde::Serialize;
use syros_client::{Bytes, Client, Error, ErrorKind, SetOptions};

use super::output::{self, OutputFormat};

/// Cache commands.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// The value under KEY with its expiry and tags (exit 2 if absent or expired).
    #[command(after_help = "Examples:\n  \
        syros cache get user:42\n  \
        syros cache get user:42 --raw > value.bin\n  \
        syros cache get user:42 -o json | jq -r .value")]
    Get {
        /// The cache key.
        key: String,
        /// Print only the value's bytes, as stored (overrides --output).
        #[arg(long)]
        raw: bool,
    },
    /// Store VALUE under KEY, replacing any earlier value and tags.
    #[command(after_help = "Examples:\n  \
        syros cache set user:42 '{\"name\":\"Ada\"}' --ttl 5m --tag users --tag tenant:7\n  \
        syros cache set report:1 - < report.pdf")]
    Set {
        /// The cache key.
        key: String,
        /// The value; `-` reads it from stdin (any bytes).
        value: String,
        /// Expire after this long (e.g. 30s, 5m, 1h; at most 30 days) [default: never].
        #[arg(long)]
        ttl: Option<humantime::Duration>,
        /// A tag for `invalidate-tag` (repeat for several).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Remove KEY (exit 0 whether or not it existed; `deleted` says which).
    #[command(after_help = "Examples:\n  syros cache delete user:42")]
    Delete {
        /// The cache key.
        key: String,
    },
    /// Remove every key carrying TAG, atomically, and print how many were removed.
    #[command(after_help = "Examples:\n  syros cache invalidate-tag users")]
    InvalidateTag {
        /// The tag.
        tag: String,
    },
}

#[derive(Serialize)]
struct EntryOut {
    key: String,
    /// The value as text when it is UTF-8, else null.
    value: Option<String>,
    value_base64: String,
    expires_at_ms: Option<i64>,
    tags: Vec<String>,
}

#[derive(Serialize)]
struct SetOut {
    key: String,
    expires_at_ms: Option<i64>,
}

#[derive(Serialize)]
struct DeleteOut {
    key: String,
    deleted: bool,
}

#[derive(Serialize)]
struct InvalidateOut {
    tag: String,
    removed: u64,
}

fn read_value(value: String) -> Result<Bytes, Error> {
    if value != "-" {
        return Ok(Bytes::from(value));
    }
    let mut buffer = Vec::new();
    std::io::stdin().read_to_end(&mut buffer).map_err(|err| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot read the value from stdin: {err}"),
        )
    })?;
    Ok(Bytes::from(buffer))
}

/// Run a cache command.
pub async fn run(
    client: &Client,
    command: CacheCommand,
    format: OutputFormat,
) -> Result<(), Error> {
    let cache = client.cache();
    match command {
        CacheCommand::Get { key, raw } => {
            let Some(entry) = cache.get(&key).await? else {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no cache entry under {key}"),
                ));
            };
            if raw {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(&entry.value);
                let _ = stdout.flush();
                return Ok(());
            }
            let out = EntryOut {
                value: std::str::from_utf8(&entry.value).ok().map(str::to_string),
                value_base64: base64::engine::general_purpose::STANDARD.encode(&entry.value),
                key,
                expires_at_ms: entry.expires_at_ms,
                tags: entry.tags,
            };
            match format {
                OutputFormat::Json => output::print_json(&out),
                OutputFormat::Table => {
                    let value = match &out.value {
                        Some(text) => text.clone(),
                        None => {
                            format!("({} bytes, base64) {}", entry.value.len(), out.value_base64)
                        }
                    };
                    let expires = match out.expires_at_ms {
                        Some(ms) => format!("{} ({})", output::timestamp(ms), output::relative(ms)),
                        None => "never".to_string(),
                    };
                    output::print_record(vec![
                        ("KEY", out.key.clone()),
                        ("VALUE", value),
                        ("EXPIRES", expires),
                        ("TAGS", out.tags.join(", ")),
                    ]);
                }
            }
        }
        CacheCommand::Set {
            key,
            value,
            ttl,
            tags,
        } => {
            let options = SetOptions {
                ttl: ttl.map(Into::into),
                tags,
            };
            let expires_at_ms = cache.set(&key, read_value(value)?, options).await?;
            match format {
                OutputFormat::Json => output::print_json(&SetOut { key, expires_at_ms }),
                OutputFormat::Table => match expires_at_ms {
                    Some(ms) => println!("set {key}, expires {}", output::timestamp(ms)),
                    None => println!("set {key}, no expiry"),
                },
            }
        }
        CacheCommand::Delete { key } => {
            let deleted = cache.delete(&key).await?;
            match format {
                OutputFormat::Json => output::print_json(&DeleteOut { key, deleted }),
                OutputFormat::Table if deleted => println!("deleted {key}"),
                OutputFormat::Table => println!("{key} was not cached"),
            }
        }
        CacheCommand::InvalidateTag { tag } => {
            let removed = cache.invalidate_tag(&tag).await?;
            match format {
                OutputFormat::Json => output::print_json(&InvalidateOut { tag, removed }),
                OutputFormat::Table => println!("removed {removed} key(s) tagged {tag}"),
            }
        }
    }
    Ok(())
}
