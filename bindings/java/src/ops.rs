//! The operations Java can name: each maps its JSON arguments onto one binding-API call and its
//! result onto a [`Reply`]. Every operation returns a [`CoreTask`] running on the core runtime.

use std::sync::Arc;

use serde_json::{json, Value};
use syros_binding_api::{self as api, rt, rt::CoreTask, ErrorRecord, Result};

use crate::records::{self, Args};

/// An object Java holds a handle to.
#[derive(Clone)]
pub(crate) enum Target {
    Client(Arc<api::Client>),
    Lease(Arc<api::Lease>),
    Subscription(Arc<api::Subscription>),
    Worker(Arc<api::Worker>),
    Ticket(Arc<api::ComputeTicket>),
}

/// What an operation hands back: a new object, a JSON record, bytes (each optional).
#[derive(Default)]
pub(crate) struct Reply {
    pub handle: Option<Target>,
    pub json: Option<String>,
    pub bytes: Option<Vec<u8>>,
}

impl Reply {
    fn json(value: Value) -> Reply {
        Reply {
            json: Some(value.to_string()),
            ..Reply::default()
        }
    }

    fn object(target: Target, value: Value) -> Reply {
        Reply {
            handle: Some(target),
            json: Some(value.to_string()),
            bytes: None,
        }
    }
}

/// Run `task` and map its value to a reply (on the core runtime).
fn then<T, F>(task: CoreTask<T>, reply: F) -> CoreTask<Reply>
where
    T: Send + 'static,
    F: FnOnce(T) -> Reply + Send + 'static,
{
    task.map(reply)
}

/// A reply that is ready now.
fn ready(reply: Result<Reply>) -> CoreTask<Reply> {
    match reply {
        Ok(reply) => rt::spawn(async move { Ok(reply) }),
        Err(err) => CoreTask::failed(err),
    }
}

fn unknown(target: &str, op: &str) -> CoreTask<Reply> {
    CoreTask::failed(ErrorRecord::invalid(format!(
        "unknown operation {op:?} on {target}"
    )))
}

/// Start operation `op` on `target` (`None`: the global operations).
pub(crate) fn start(
    target: Option<Target>,
    op: &str,
    args: &str,
    bytes: Option<Vec<u8>>,
) -> CoreTask<Reply> {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(err) => return CoreTask::failed(err),
    };
    let started = match target {
        None => global(op, &args),
        Some(Target::Client(client)) => client_op(&client, op, &args, bytes),
        Some(Target::Lease(lease)) => lease_op(&lease, op, &args),
        Some(Target::Subscription(sub)) => subscription_op(&sub, op, &args),
        Some(Target::Worker(worker)) => worker_op(&worker, op, &args),
        Some(Target::Ticket(ticket)) => ticket_op(&ticket, op, &args, bytes),
    };
    started.unwrap_or_else(CoreTask::failed)
}

fn global(op: &str, args: &Args) -> Result<CoreTask<Reply>> {
    Ok(match op {
        "connect" => {
            let client = api::Client::new(records::client_config(args)?)?;
            let target = Target::Client(client.clone());
            then(client.connect(), move |()| Reply::object(target, json!({})))
        }
        "error_codes" => ready(Ok(Reply::json(json!(api::ErrorKind::ALL
            .iter()
            .map(|kind| kind.code())
            .collect::<Vec<_>>())))),
        "version" => ready(Ok(Reply::json(json!(env!("CARGO_PKG_VERSION"))))),
        other => unknown("the library", other),
    })
}

fn lease_reply(lease: Arc<api::Lease>) -> Reply {
    let info = records::lease_info(&lease.info());
    Reply::object(Target::Lease(lease), info)
}

fn client_op(
    client: &Arc<api::Client>,
    op: &str,
    args: &Args,
    bytes: Option<Vec<u8>>,
) -> Result<CoreTask<Reply>> {
    Ok(match op {
        "close" => {
            client.close();
            ready(Ok(Reply::default()))
        }
        "set_auth_token" => {
            client.set_auth_token(args.opt_str("token")?);
            ready(Ok(Reply::default()))
        }
        "owner" => ready(client.owner().map(|o| Reply::json(json!(o)))),
        "current_address" => ready(client.current_address().map(|a| Reply::json(json!(a)))),
        "stats" => ready(client.stats().map(|s| {
            Reply::json(json!({"calls": s.calls, "attempts": s.attempts,
                "retries": s.retries, "failovers": s.failovers}))
        })),
        "check_health" => then(client.check_health(), |()| Reply::default()),
        "lock" => then(
            client.lock(args.str("key")?, records::lock_request(args)?),
            lease_reply,
        ),
        "try_lock" => then(
            client.try_lock(args.str("key")?, records::lock_request(args)?),
            |lease| lease.map_or_else(|| Reply::json(Value::Null), lease_reply),
        ),
        "lock_status" => then(client.lock_status(args.str("key")?), |info| {
            Reply::json(info.as_ref().map_or(Value::Null, records::lease_info))
        }),
        "list_locks" => then(
            client.list_locks(args.str_or("prefix", "")?, args.u32_or("limit", 0)?),
            |infos| {
                Reply::json(Value::Array(
                    infos.iter().map(records::lease_info).collect(),
                ))
            },
        ),
        "force_release" => then(client.force_release(args.str("key")?), |info| {
            Reply::json(info.as_ref().map_or(Value::Null, records::lease_info))
        }),
        "cache_get" => then(client.cache_get(args.str("key")?), |entry| match entry {
            Some(entry) => Reply {
                handle: None,
                json: Some(
                    json!({"expires_at_ms": entry.expires_at_ms, "tags": entry.tags}).to_string(),
                ),
                bytes: Some(entry.value.to_vec()),
            },
            None => Reply::json(Value::Null),
        }),
        "cache_set" => then(
            client.cache_set(
                args.str("key")?,
                bytes.unwrap_or_default(),
                records::cache_set(args)?,
            ),
            |expiry| Reply::json(json!({ "expires_at_ms": expiry })),
        ),
        "cache_delete" => then(client.cache_delete(args.str("key")?), |existed| {
            Reply::json(json!(existed))
        }),
        "cache_invalidate_tag" => then(client.cache_invalidate_tag(args.str("tag")?), |n| {
            Reply::json(json!(n))
        }),
        "cache_begin" => then(
            client.cache_begin(args.str("key")?, records::cache_set(args)?),
            |lookup| match lookup {
                api::CacheLookup::Hit(value) => Reply {
                    handle: None,
                    json: Some(json!({"hit": true}).to_string()),
                    bytes: Some(value.to_vec()),
                },
                api::CacheLookup::Compute(ticket) => {
                    Reply::object(Target::Ticket(ticket), json!({"hit": false}))
                }
            },
        ),
        "append" => then(
            client.append(
                args.str("stream")?,
                records::new_events(args)?,
                records::expected_version(args)?,
            ),
            |result| Reply::json(records::append_result(&result)),
        ),
        "read" => then(client.read(records::read_request(args)?), |result| {
            Reply::json(records::read_result(&result))
        }),
        "subscribe" => then(
            client.subscribe(args.opt_str("stream")?, records::subscribe_start(args)?),
            |sub| Reply::object(Target::Subscription(sub), json!({})),
        ),
        "start_saga" => then(client.start_saga(records::start_saga(args)?), |saga| {
            Reply::json(records::saga_info(&saga))
        }),
        "get_saga" => then(client.get_saga(args.str("saga_id")?), |saga| {
            Reply::json(records::saga_info(&saga))
        }),
        "list_sagas" => then(
            client.list_sagas(
                args.opt_str("state")?
                    .map(|s| api::parse_saga_state(&s))
                    .transpose()?,
                args.opt_str("name")?,
                args.u32_or("limit", 0)?,
            ),
            |sagas| Reply::json(Value::Array(sagas.iter().map(records::saga_info).collect())),
        ),
        "cancel_saga" => then(client.cancel_saga(args.str("saga_id")?), |saga| {
            Reply::json(records::saga_info(&saga))
        }),
        "wait_saga" => then(
            client.wait_saga(args.str("saga_id")?, args.u64_or("timeout_ms", 60_000)?),
            |saga| Reply::json(records::saga_info(&saga)),
        ),
        "worker" => then(
            client.worker(args.str("service")?, args.u32_or("max_concurrent", 16)?),
            |worker| {
                let id = worker.worker_id();
                Reply::object(Target::Worker(worker), json!({ "worker_id": id }))
            },
        ),
        other => unknown("a client", other),
    })
}

fn lease_op(lease: &Arc<api::Lease>, op: &str, args: &Args) -> Result<CoreTask<Reply>> {
    Ok(match op {
        "info" => ready(Ok(Reply::json(records::lease_info(&lease.info())))),
        "state" => ready(Ok(Reply::json(
            json!({"lost": lease.is_lost(), "held": lease.is_held()}),
        ))),
        "release" => then(lease.release(), |()| Reply::default()),
        "renew" => then(lease.renew(), |info| {
            Reply::json(records::lease_info(&info))
        }),
        "wait_end" => then(lease.wait_end(args.opt_u64("timeout_ms")?), |end| {
            Reply::json(json!(match end {
                api::LeaseEnd::Lost => "lost",
                api::LeaseEnd::Released => "released",
                api::LeaseEnd::TimedOut => "timed_out",
            }))
        }),
        other => unknown("a lease", other),
    })
}

fn subscription_op(sub: &Arc<api::Subscription>, op: &str, args: &Args) -> Result<CoreTask<Reply>> {
    Ok(match op {
        "next" => then(sub.next(args.opt_u64("timeout_ms")?), |item| {
            Reply::json(match item {
                api::SubscriptionItem::Event(event) => {
                    json!({"event": records::recorded_event(&event)})
                }
                api::SubscriptionItem::TimedOut => json!({"timed_out": true}),
                api::SubscriptionItem::Ended => json!({"ended": true}),
            })
        }),
        "close" => {
            sub.close();
            ready(Ok(Reply::default()))
        }
        other => unknown("a subscription", other),
    })
}

fn worker_op(worker: &Arc<api::Worker>, op: &str, args: &Args) -> Result<CoreTask<Reply>> {
    Ok(match op {
        "poll_task" => then(worker.poll_task(args.opt_u64("timeout_ms")?), |task| {
            Reply::json(task.as_ref().map_or(Value::Null, records::task_record))
        }),
        "complete" => then(
            worker.complete(args.str("task_id")?, records::task_outcome(args)?),
            |accepted| Reply::json(json!(accepted)),
        ),
        "heartbeat" => then(worker.heartbeat(args.str("task_id")?), |assigned| {
            Reply::json(json!(assigned))
        }),
        "outstanding" => ready(Ok(Reply::json(json!(worker.outstanding())))),
        "stop" => {
            worker.stop();
            ready(Ok(Reply::default()))
        }
        "stop_and_drain" => then(worker.stop_and_drain(), |()| Reply::default()),
        other => unknown("a worker", other),
    })
}

fn ticket_op(
    ticket: &Arc<api::ComputeTicket>,
    op: &str,
    args: &Args,
    bytes: Option<Vec<u8>>,
) -> Result<CoreTask<Reply>> {
    Ok(match op {
        "complete" => then(ticket.complete(bytes.unwrap_or_default()), |stored| Reply {
            bytes: Some(stored.to_vec()),
            ..Reply::default()
        }),
        "fail" => then(ticket.fail(args.str("message")?), |()| Reply::default()),
        other => unknown("a compute ticket", other),
    })
}
