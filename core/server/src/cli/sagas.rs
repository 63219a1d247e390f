//! `syros saga start|ls|show|cancel`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Subcommand;
use serde::Serialize;
use syros_client::{
    Client, Error, ErrorKind, SagaInfo, SagaState, StartSaga, StepDefinition, StepRetryPolicy,
};
use syros_engine::sagas::RetryPolicy;

use crate::http::sagas::{start_request, StartSagaBody};

use super::output::{self, EmbeddedJson, OutputFormat, Spinner};

fn parse_state(text: &str) -> Result<SagaState, String> {
    SagaState::parse(text).ok_or_else(|| {
        let names: Vec<_> = SagaState::ALL.iter().map(|s| s.as_str()).collect();
        format!("{text:?}: expected one of {}", names.join(", "))
    })
}

/// Saga commands.
#[derive(Debug, Subcommand)]
pub enum SagaCommand {
    /// Start the saga described in FILE (JSON, the body of the REST API's `POST /api/v1/sagas`;
    /// `-` reads stdin) and print it.
    ///
    /// The file: {"name": ..., "steps": [{"name", "service", "action", "compensation",
    /// "timeout_seconds" | "timeout_ms", "retry_policy"}], "input": any JSON,
    /// "idempotency_key": ..., "retry_policy": {"initial_interval_ms", "backoff_coefficient",
    /// "maximum_interval_ms", "maximum_attempts", "non_retryable_errors"}}.
    #[command(after_help = "Examples:\n  \
        syros saga start order.json\n  \
        syros saga start order.json --wait --wait-timeout 2m   # until completed (or not)\n  \
        syros saga start - < order.json")]
    Start {
        /// The saga definition (JSON); `-` for stdin.
        file: PathBuf,
        /// Wait until the saga ends (completed, compensated, compensation_failed or cancelled)
        /// and print it then; exit 5 if it has not ended within --wait-timeout.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "5m", requires = "wait")]
        wait_timeout: humantime::Duration,
    },
    /// List sagas, newest first.
    #[command(after_help = "Examples:\n  \
        syros saga ls\n  \
        syros saga ls --state compensation_failed -o json")]
    Ls {
        /// Only sagas in this state: pending, running, compensating, completed, compensated,
        /// compensation_failed or cancelled.
        #[arg(long, value_parser = parse_state)]
        state: Option<SagaState>,
        /// Only sagas with this name.
        #[arg(long)]
        name: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// A saga with its steps, every attempt and their errors (exit 2 if there is no such saga).
    #[command(after_help = "Examples:\n  syros saga show 01a20a35-aac4-70bf-9c37-13521d32db72")]
    Show {
        /// The saga id.
        saga_id: String,
    },
    /// Cancel a saga: what completed is compensated; it ends `cancelled`.
    #[command(after_help = "Examples:\n  syros saga cancel 01a20a35-aac4-70bf-9c37-13521d32db72")]
    Cancel {
        /// The saga id.
        saga_id: String,
    },
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, message)
}

/// The client core's policy for the engine's (milliseconds to durations).
fn retry_policy(policy: RetryPolicy) -> StepRetryPolicy {
    StepRetryPolicy {
        initial_interval: Duration::from_millis(policy.initial_interval_ms),
        backoff_coefficient: policy.backoff_coefficient,
        maximum_interval: Duration::from_millis(policy.maximum_interval_ms),
        maximum_attempts: policy.maximum_attempts,
        non_retryable_errors: policy.non_retryable_errors,
    }
}

/// Read the saga file: the REST API's start body, read and defaulted by the REST gateway's own
/// code, so that the file and `POST /api/v1/sagas` never drift apart.
fn read_saga_file(path: &Path) -> Result<StartSaga, Error> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|err| invalid(format!("cannot read {}: {err}", path.display())))?;
    let body: StartSagaBody = serde_json::from_str(&text).map_err(|err| {
        invalid(format!(
            "{} is not a saga definition: {err}",
            path.display()
        ))
    })?;
    let request = start_request(body)
        .map_err(|err| invalid(format!("{}: {}", path.display(), err.body.message)))?;
    Ok(StartSaga {
        name: request.name,
        steps: request
            .steps
            .into_iter()
            .map(|step| StepDefinition {
                name: step.name,
                service: step.service,
                action: step.action,
                compensation: step.compensation,
                timeout: Duration::from_millis(step.timeout_ms),
                retry: step.retry.map(retry_policy),
            })
            .collect(),
        input_json: request.input,
        idempotency_key: Some(request.idempotency_key).filter(|key| !key.is_empty()),
        retry: request.retry.map(retry_policy),
    })
}

#[derive(Serialize)]
struct AttemptOut {
    attempt: u32,
    kind: String,
    started_at_ms: i64,
    finished_at_ms: i64,
    error_type: Option<String>,
    error_message: Option<String>,
}

#[derive(Serialize)]
struct StepOut {
    name: String,
    service: String,
    action: String,
    compensation: Option<String>,
    state: String,
    output: Option<EmbeddedJson>,
    attempts: Vec<AttemptOut>,
}

/// A saga in JSON output.
#[derive(Serialize)]
struct SagaOut {
    saga_id: String,
    name: String,
    state: &'static str,
    input: EmbeddedJson,
    idempotency_key: Option<String>,
    error: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
    steps: Vec<StepOut>,
}

impl From<&SagaInfo> for SagaOut {
    fn from(saga: &SagaInfo) -> Self {
        SagaOut {
            saga_id: saga.saga_id.clone(),
            name: saga.name.clone(),
            state: saga.state.as_str(),
            input: EmbeddedJson::new(&saga.input_json),
            idempotency_key: saga.idempotency_key.clone(),
            error: saga.error.clone(),
            created_at_ms: saga.created_at_ms,
            updated_at_ms: saga.updated_at_ms,
            steps: saga
                .steps
                .iter()
                .map(|step| StepOut {
                    name: step.name.clone(),
                    service: step.service.clone(),
                    action: step.action.clone(),
                    compensation: step.compensation.clone(),
                    state: step.state.clone(),
                    output: step.output_json.as_deref().map(EmbeddedJson::new),
                    attempts: step
                        .attempts
                        .iter()
                        .map(|a| AttemptOut {
                            attempt: a.attempt,
                            kind: a.kind.clone(),
                            started_at_ms: a.started_at_ms,
                            finished_at_ms: a.finished_at_ms,
                            error_type: a.error_type.clone(),
                            error_message: a.error_message.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct SagaListOut {
    sagas: Vec<SagaOut>,
}

/// Steps done out of all, e.g. `2/3`.
fn progress(saga: &SagaInfo) -> String {
    let done = saga.steps.iter().filter(|s| s.state == "completed").count();
    format!("{done}/{}", saga.steps.len())
}

/// The full picture of one saga: its fields, its steps, then every attempt.
fn print_saga(saga: &SagaInfo) {
    output::print_record(vec![
        ("SAGA", saga.saga_id.clone()),
        ("NAME", saga.name.clone()),
        ("STATE", saga.state.as_str().to_string()),
        ("STEPS DONE", progress(saga)),
        ("CREATED", output::timestamp(saga.created_at_ms)),
        ("UPDATED", output::timestamp(saga.updated_at_ms)),
        (
            "IDEMPOTENCY KEY",
            saga.idempotency_key.clone().unwrap_or_default(),
        ),
        ("ERROR", saga.error.clone().unwrap_or_default()),
        ("INPUT", saga.input_json.clone()),
    ]);
    println!();
    let mut steps = output::table([
        "#",
        "STEP",
        "SERVICE",
        "ACTION",
        "COMPENSATION",
        "STATE",
        "ATTEMPTS",
    ]);
    for (index, step) in saga.steps.iter().enumerate() {
        steps.add_row(vec![
            (index + 1).to_string(),
            step.name.clone(),
            step.service.clone(),
            step.action.clone(),
            step.compensation.clone().unwrap_or_else(|| "-".into()),
            step.state.clone(),
            step.attempts.len().to_string(),
        ]);
    }
    output::print_table(&steps);
    if saga.steps.iter().any(|s| !s.attempts.is_empty()) {
        println!();
        let mut attempts = output::table(["STEP", "ATTEMPT", "KIND", "STARTED", "TOOK", "ERROR"]);
        for step in &saga.steps {
            for a in &step.attempts {
                let error = match (&a.error_type, &a.error_message) {
                    (Some(kind), Some(message)) => format!("{kind}: {message}"),
                    (Some(text), None) | (None, Some(text)) => text.clone(),
                    (None, None) => String::new(),
                };
                attempts.add_row(vec![
                    step.name.clone(),
                    a.attempt.to_string(),
                    a.kind.clone(),
                    output::timestamp(a.started_at_ms),
                    output::elapsed(a.started_at_ms, a.finished_at_ms),
                    error,
                ]);
            }
        }
        output::print_table(&attempts);
    }
}

fn show(saga: &SagaInfo, format: OutputFormat) {
    match format {
        OutputFormat::Json => output::print_json(&SagaOut::from(saga)),
        OutputFormat::Table => print_saga(saga),
    }
}

/// Run a saga command.
pub async fn run(client: &Client, command: SagaCommand, format: OutputFormat) -> Result<(), Error> {
    let sagas = client.sagas();
    match command {
        SagaCommand::Start {
            file,
            wait,
            wait_timeout,
        } => {
            let saga = sagas.start(read_saga_file(&file)?).await?;
            if !wait {
                show(&saga, format);
                return Ok(());
            }
            let spinner = Spinner::start(format!(
                "saga {} is {}, waiting for it to end",
                saga.saga_id,
                saga.state.as_str()
            ));
            let ended = sagas.wait(&saga.saga_id, wait_timeout.into()).await;
            spinner.stop();
            show(&ended?, format);
        }
        SagaCommand::Ls { state, name, limit } => {
            let listed = sagas.list(state, name.as_deref(), limit).await?;
            match format {
                OutputFormat::Json => output::print_json(&SagaListOut {
                    sagas: listed.iter().map(SagaOut::from).collect(),
                }),
                OutputFormat::Table if listed.is_empty() => eprintln!("no saga"),
                OutputFormat::Table => {
                    let mut table =
                        output::table(["SAGA", "NAME", "STATE", "STEPS DONE", "UPDATED", "ERROR"]);
                    for saga in &listed {
                        table.add_row(vec![
                            saga.saga_id.clone(),
                            saga.name.clone(),
                            saga.state.as_str().to_string(),
                            progress(saga),
                            output::timestamp(saga.updated_at_ms),
                            saga.error.clone().unwrap_or_default(),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
        }
        SagaCommand::Show { saga_id } => show(&sagas.get(&saga_id).await?, format),
        SagaCommand::Cancel { saga_id } => show(&sagas.cancel(&saga_id).await?, format),
    }
    Ok(())
}
