//! `syros events append|read|tail`.

use clap::Subcommand;
use serde::Serialize;
use syros_client::{
    Client, Direction, Error, ErrorKind, EventData, ExpectedVersion, ReadFrom, RecordedEvent,
    SubscribeFrom,
};

use super::output::{self, EmbeddedJson, OutputFormat, Spinner};

fn parse_expected_version(text: &str) -> Result<ExpectedVersion, String> {
    ExpectedVersion::parse(text)
        .ok_or_else(|| format!("{text:?}: expected `any`, `no_stream` or a version number"))
}

/// Event store commands.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Append one event to STREAM, only if the stream is at --expected-version (exit 3 if not).
    #[command(after_help = "Examples:\n  \
        syros events append orders-42 --type OrderCreated --data '{\"total\":129.9}' \
        --expected-version no_stream\n  \
        syros events append orders-42 --type OrderPaid --expected-version 0")]
    Append {
        /// The stream.
        stream: String,
        /// The event's type name.
        #[arg(long = "type")]
        event_type: String,
        /// The event's data, a JSON document.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Metadata, a JSON document.
        #[arg(long)]
        metadata: Option<String>,
        /// `any`, `no_stream` (the stream must not exist) or the version of the stream's last
        /// event.
        #[arg(long, default_value = "any", value_parser = parse_expected_version)]
        expected_version: ExpectedVersion,
        /// The event's id (default: a new UUID); repeating an append with the same id is
        /// recognised by the server instead of stored twice.
        #[arg(long)]
        event_id: Option<String>,
    },
    /// Read events of STREAM from a version (exit 2 if the stream does not exist).
    #[command(after_help = "Examples:\n  \
        syros events read orders-42\n  \
        syros events read orders-42 --from 10 --limit 5\n  \
        syros events read orders-42 --backwards --limit 1   # the newest event")]
    Read {
        /// The stream.
        stream: String,
        /// First version to read [default: 0, or the newest with --backwards].
        #[arg(long)]
        from: Option<u64>,
        /// Newest first.
        #[arg(long)]
        backwards: bool,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Follow STREAM live until Ctrl-C: events appended from now on, or from version --from on
    /// (catch-up, then live, without gap or duplicate across reconnects).
    #[command(after_help = "Examples:\n  \
        syros events tail orders-42\n  \
        syros events tail orders-42 --from 0 -o json | jq .event_type")]
    Tail {
        /// The stream.
        stream: String,
        /// Start at this version (replaying what is stored) [default: only new events].
        #[arg(long)]
        from: Option<u64>,
    },
}

/// An event in JSON output.
#[derive(Serialize)]
struct EventOut {
    stream: String,
    version: u64,
    global_position: u64,
    event_id: String,
    event_type: String,
    data: EmbeddedJson,
    metadata: Option<EmbeddedJson>,
    created_at_ms: i64,
}

impl From<RecordedEvent> for EventOut {
    fn from(event: RecordedEvent) -> Self {
        EventOut {
            data: EmbeddedJson::new(&event.data_json),
            metadata: event.metadata_json.as_deref().map(EmbeddedJson::new),
            stream: event.stream,
            version: event.version,
            global_position: event.global_position,
            event_id: event.event_id,
            event_type: event.event_type,
            created_at_ms: event.created_at_ms,
        }
    }
}

#[derive(Serialize)]
struct AppendOut {
    stream: String,
    version: u64,
    global_position: u64,
}

#[derive(Serialize)]
struct ReadOut {
    stream: String,
    last_version: u64,
    events: Vec<EventOut>,
}

/// One `tail` line in table mode (the header is [`TAIL_HEADER`]).
fn tail_line(event: &RecordedEvent) -> String {
    format!(
        "{:>7}  {:>8}  {:<24}  {:<24}  {}",
        event.version,
        event.global_position,
        event.event_type,
        output::timestamp(event.created_at_ms),
        event.data_json
    )
}

const TAIL_HEADER: &str =
    "VERSION  POSITION  TYPE                      CREATED                   DATA";

async fn tail(
    client: &Client,
    stream: &str,
    from: Option<u64>,
    format: OutputFormat,
) -> Result<(), Error> {
    let start = from.map_or(SubscribeFrom::End, SubscribeFrom::At);
    let mut subscription = client.events().subscribe(stream, start).await?;
    if format == OutputFormat::Table {
        println!("{TAIL_HEADER}");
    }
    let mut spinner = Some(Spinner::start(format!(
        "following {stream}, waiting for an event (Ctrl-C to stop)"
    )));
    loop {
        let next = tokio::select! {
            next = subscription.next_event() => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let event = match next {
            Some(Ok(event)) => event,
            Some(Err(err)) => return Err(err),
            None => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    format!("the subscription to {stream} ended"),
                ))
            }
        };
        if let Some(spinner) = spinner.take() {
            spinner.stop();
        }
        match format {
            OutputFormat::Json => output::print_json_line(&EventOut::from(event)),
            OutputFormat::Table => println!("{}", tail_line(&event)),
        }
    }
}

/// Run an events command.
pub async fn run(
    client: &Client,
    command: EventsCommand,
    format: OutputFormat,
) -> Result<(), Error> {
    let events = client.events();
    match command {
        EventsCommand::Append {
            stream,
            event_type,
            data,
            metadata,
            expected_version,
            event_id,
        } => {
            let event = EventData {
                event_id,
                event_type,
                data_json: data,
                metadata_json: metadata,
            };
            let appended = events
                .append(&stream, vec![event], expected_version)
                .await?;
            let out = AppendOut {
                stream,
                version: appended.last_version,
                global_position: appended.last_position,
            };
            match format {
                OutputFormat::Json => output::print_json(&out),
                OutputFormat::Table => println!(
                    "appended to {} at version {} (global position {})",
                    out.stream, out.version, out.global_position
                ),
            }
        }
        EventsCommand::Read {
            stream,
            from,
            backwards,
            limit,
        } => {
            let (direction, from) = match (backwards, from) {
                (false, from) => (Direction::Forwards, ReadFrom::At(from.unwrap_or(0))),
                (true, Some(from)) => (Direction::Backwards, ReadFrom::At(from)),
                (true, None) => (Direction::Backwards, ReadFrom::End),
            };
            let read = events.read_stream(&stream, from, direction, limit).await?;
            if !read.exists {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("stream {stream} does not exist"),
                ));
            }
            match format {
                OutputFormat::Json => output::print_json(&ReadOut {
                    stream,
                    last_version: read.last,
                    events: read.events.into_iter().map(EventOut::from).collect(),
                }),
                OutputFormat::Table => {
                    let mut table =
                        output::table(["VERSION", "POSITION", "TYPE", "CREATED", "DATA"]);
                    for event in &read.events {
                        table.add_row(vec![
                            event.version.to_string(),
                            event.global_position.to_string(),
                            event.event_type.clone(),
                            output::timestamp(event.created_at_ms),
                            event.data_json.clone(),
                        ]);
                    }
                    output::print_table(&table);
                    eprintln!(
                        "{} event(s); {stream} is at version {}",
                        read.events.len(),
                        read.last
                    );
                }
            }
        }
        EventsCommand::Tail { stream, from } => tail(client, &stream, from, format).await?,
    }
    Ok(())
}
