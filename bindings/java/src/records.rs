//! JSON shapes of the binding API's records, both ways (snake_case names, milliseconds,
//! fencing tokens and versions as JSON integers read by Java as `long`).

use serde_json::{json, Map, Value};
use syros_binding_api::{self as api, ErrorRecord, Result};

/// The JSON object of one operation's arguments.
pub(crate) struct Args(Map<String, Value>);

fn bad(name: &str, what: &str) -> ErrorRecord {
    ErrorRecord::invalid(format!("argument {name} must be {what}"))
}

impl Args {
    pub(crate) fn parse(text: &str) -> Result<Args> {
        if text.trim().is_empty() {
            return Ok(Args(Map::new()));
        }
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(Args(map)),
            _ => Err(ErrorRecord::invalid("the arguments must be a JSON object")),
        }
    }

    fn from_value(value: &Value) -> Result<Args> {
        match value {
            Value::Object(map) => Ok(Args(map.clone())),
            _ => Err(ErrorRecord::invalid("expected a JSON object")),
        }
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub(crate) fn str(&self, name: &str) -> Result<String> {
        self.opt_str(name)?
            .ok_or_else(|| bad(name, "given (a string)"))
    }

    pub(crate) fn str_or(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.opt_str(name)?.unwrap_or_else(|| default.to_string()))
    }

    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(name, "a string")),
        }
    }

    pub(crate) fn opt_u64(&self, name: &str) -> Result<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| bad(name, "a non-negative integer")),
        }
    }

    pub(crate) fn u64_or(&self, name: &str, default: u64) -> Result<u64> {
        Ok(self.opt_u64(name)?.unwrap_or(default))
    }

    pub(crate) fn u32_or(&self, name: &str, default: u32) -> Result<u32> {
        let value = self.u64_or(name, u64::from(default))?;
        u32::try_from(value).map_err(|_| bad(name, "at most 4294967295"))
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.get(name) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad(name, "a boolean")),
        }
    }

    fn f64_or(&self, name: &str, default: f64) -> Result<f64> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value.as_f64().ok_or_else(|| bad(name, "a number")),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<String>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(name, "an array of strings"))
                })
                .collect(),
            Some(_) => Err(bad(name, "an array of strings")),
        }
    }

    fn objects(&self, name: &str) -> Result<Vec<Args>> {
        match self.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(Args::from_value).collect(),
            Some(_) => Err(bad(name, "an array of objects")),
        }
    }

    fn object(&self, name: &str) -> Result<Option<Args>> {
        self.get(name).map(Args::from_value).transpose()
    }
}

/// `{code, retryable, message, details}` for `NativeBridge.error`.
pub(crate) fn error_json(err: &ErrorRecord) -> String {
    json!({
        "code": err.code,
        "retryable": err.retryable,
        "message": err.message,
        "details": err.details,
    })
    .to_string()
}

fn retry_config(args: &Args) -> Result<api::RetryConfig> {
    Ok(api::RetryConfig {
        initial_interval_ms: args.u64_or("initial_interval_ms", 100)?,
        multiplier: args.f64_or("multiplier", 2.0)?,
        max_interval_ms: args.u64_or("max_interval_ms", 5_000)?,
        max_attempts: args.u32_or("max_attempts", 5)?,
        deadline_ms: args.opt_u64("deadline_ms")?,
    })
}

pub(crate) fn client_config(args: &Args) -> Result<api::ClientConfig> {
    let addresses = args.strings("addresses")?;
    if addresses.is_empty() {
        return Err(ErrorRecord::invalid("at least one address is needed"));
    }
    let mut config = api::ClientConfig::new(addresses);
    if let Some(ms) = args.opt_u64("connect_timeout_ms")? {
        config.connect_timeout_ms = ms;
    }
    if let Some(ms) = args.opt_u64("call_timeout_ms")? {
        config.call_timeout_ms = ms;
    }
    config.retry = args
        .object("retry")?
        .as_ref()
        .map(retry_config)
        .transpose()?;
    config.resubscribe = args
        .object("resubscribe")?
        .as_ref()
        .map(retry_config)
        .transpose()?;
    config.owner = args.opt_str("owner")?;
    config.auth_token = args.opt_str("auth_token")?;
    if let Some(ms) = args.opt_u64("keepalive_interval_ms")? {
        config.keepalive_interval_ms = (ms > 0).then_some(ms);
    }
    Ok(config)
}

pub(crate) fn lock_request(args: &Args) -> Result<api::LockRequest> {
    let mut request =
        api::LockRequest::new(args.u64_or("ttl_ms", 30_000)?, args.u64_or("wait_ms", 0)?);
    request.owner = args.opt_str("owner")?;
    request.auto_renew = args.bool_or("auto_renew", true)?;
    Ok(request)
}

pub(crate) fn lease_info(info: &api::LeaseInfo) -> Value {
    json!({
        "lease_id": info.lease_id,
        "key": info.key,
        "owner": info.owner,
        "fencing_token": info.fencing_token,
        "acquired_at_ms": info.acquired_at_ms,
        "expires_at_ms": info.expires_at_ms,
    })
}

pub(crate) fn cache_set(args: &Args) -> Result<api::CacheSet> {
    Ok(api::CacheSet {
        ttl_ms: args.opt_u64("ttl_ms")?,
        tags: args.strings("tags")?,
    })
}

pub(crate) fn new_events(args: &Args) -> Result<Vec<api::NewEvent>> {
    args.objects("events")?
        .iter()
        .map(|event| {
            Ok(api::NewEvent {
                event_id: event.opt_str("event_id")?,
                event_type: event.str("event_type")?,
                data_json: event.str_or("data_json", "{}")?,
                metadata_json: event.opt_str("metadata_json")?,
            })
        })
        .collect()
}

pub(crate) fn expected_version(args: &Args) -> Result<api::ExpectedVersion> {
    match args.get("expected") {
        None => Ok(api::ExpectedVersion::Any),
        Some(Value::String(name)) => api::parse_expected_version(name),
        Some(value) => value
            .as_u64()
            .map(api::ExpectedVersion::Exact)
            .ok_or_else(|| bad("expected", "\"any\", \"no_stream\" or a version")),
    }
}

pub(crate) fn read_request(args: &Args) -> Result<api::ReadRequest> {
    Ok(api::ReadRequest {
        stream: args.opt_str("stream")?,
        start: args.opt_u64("start")?,
        backwards: args.bool_or("backwards", false)?,
        limit: args.u32_or("limit", 0)?,
    })
}

pub(crate) fn subscribe_start(args: &Args) -> Result<api::SubscribeStart> {
    match args.get("from") {
        None => Ok(api::SubscribeStart::Start),
        Some(Value::String(name)) => api::SubscribeStart::parse(name),
        Some(value) => value
            .as_u64()
            .map(api::SubscribeStart::At)
            .ok_or_else(|| bad("from", "\"start\", \"end\" or a position")),
    }
}

pub(crate) fn recorded_event(event: &api::RecordedEvent) -> Value {
    json!({
        "stream": event.stream,
        "version": event.version,
        "global_position": event.global_position,
        "event_id": event.event_id,
        "event_type": event.event_type,
        "data_json": event.data_json,
        "metadata_json": event.metadata_json,
        "created_at_ms": event.created_at_ms,
    })
}

pub(crate) fn append_result(result: &api::AppendResult) -> Value {
    json!({
        "last_version": result.last_version,
        "first_position": result.first_position,
        "last_position": result.last_position,
    })
}

pub(crate) fn read_result(result: &api::ReadResult) -> Value {
    json!({
        "events": result.events.iter().map(recorded_event).collect::<Vec<_>>(),
        "last": result.last,
        "exists": result.exists,
    })
}

fn step_retry(args: &Args) -> Result<api::StepRetry> {
    Ok(api::StepRetry {
        initial_interval_ms: args.u64_or("initial_interval_ms", 1_000)?,
        backoff_coefficient: args.f64_or("backoff_coefficient", 2.0)?,
        maximum_interval_ms: args.u64_or("maximum_interval_ms", 60_000)?,
        maximum_attempts: args.u32_or("maximum_attempts", 3)?,
        non_retryable_errors: args.strings("non_retryable_errors")?,
    })
}

pub(crate) fn start_saga(args: &Args) -> Result<api::StartSaga> {
    let steps = args
        .objects("steps")?
        .iter()
        .map(|step| {
            Ok(api::StepDefinition {
                name: step.str("name")?,
                service: step.str("service")?,
                action: step.str("action")?,
                compensation: step.opt_str("compensation")?,
                timeout_ms: step.u64_or("timeout_ms", 0)?,
                retry: step.object("retry")?.as_ref().map(step_retry).transpose()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(api::StartSaga {
        name: args.str("name")?,
        steps,
        input_json: args.str_or("input_json", "{}")?,
        idempotency_key: args.opt_str("idempotency_key")?,
        retry: args.object("retry")?.as_ref().map(step_retry).transpose()?,
    })
}

pub(crate) fn saga_info(saga: &api::SagaInfo) -> Value {
    let steps: Vec<Value> = saga
        .steps
        .iter()
        .map(|step| {
            let attempts: Vec<Value> = step
                .attempts
                .iter()
                .map(|a| {
                    json!({
                        "attempt": a.attempt,
                        "kind": a.kind,
                        "started_at_ms": a.started_at_ms,
                        "finished_at_ms": a.finished_at_ms,
                        "error_type": a.error_type,
                        "error_message": a.error_message,
                    })
                })
                .collect();
            json!({
                "name": step.name,
                "service": step.service,
                "action": step.action,
                "compensation": step.compensation,
                "state": step.state,
                "output_json": step.output_json,
                "attempts": attempts,
            })
        })
        .collect();
    json!({
        "saga_id": saga.saga_id,
        "name": saga.name,
        "state": saga.state.as_str(),
        "input_json": saga.input_json,
        "idempotency_key": saga.idempotency_key,
        "steps": steps,
        "created_at_ms": saga.created_at_ms,
        "updated_at_ms": saga.updated_at_ms,
    })
}

pub(crate) fn task_record(task: &api::TaskRecord) -> Value {
    json!({
        "task_id": task.task_id,
        "saga_id": task.saga_id,
        "step_name": task.step_name,
        "handler": task.handler,
        "is_compensation": task.is_compensation,
        "attempt": task.attempt,
        "idempotency_key": task.idempotency_key,
        "input_json": task.input_json,
        "previous_outputs_json": task.previous_outputs_json,
        "timeout_ms": task.timeout_ms,
    })
}

/// `{output_json}` for a completed task, `{error_type, message, non_retryable}` for a failed one.
pub(crate) fn task_outcome(args: &Args) -> Result<api::TaskOutcome> {
    Ok(match args.opt_str("error_type")? {
        Some(error_type) => api::TaskOutcome::Failed {
            error_type,
            message: args.str_or("message", "")?,
            non_retryable: args.bool_or("non_retryable", false)?,
        },
        None => api::TaskOutcome::Completed {
            output_json: args.str_or("output_json", "null")?,
        },
    })
}
