//! Runs the examples of docs/rest-api.md, docs/websocket-api.md and docs/graphql-api.md against
//! a real `syros serve`, in order, one fresh server per document.
//!
//! The documents follow three conventions:
//! - a ```bash block with a `curl` command is run with `sh` (localhost:8080 and localhost:8081
//!   point at the test server); a ```json block right after it, with the HTTP status in its
//!   info string (```json 201), is the documented answer;
//! - a ```ws block is a WebSocket session: `> {...}` lines are sent, `< {...}` lines are
//!   expected, in order. Its info string may name a path and a subprotocol
//!   (```ws /graphql/ws graphql-transport-ws, on the REST port); plain ```ws is the event
//!   WebSocket API. A connection stays open for the later blocks of the same document.
//!   A block that ends with a sent message is followed by a short pause, so that a subscription
//!   it starts is running before the next command (graphql-transport-ws does not acknowledge
//!   subscriptions).
//! - Documented answers must match exactly, except ids and timestamps (keys ending in `_id`,
//!   `Id`, `_at`, `At`, `_ms`, `Ms`): a documented id used in a later command is replaced by
//!   the real one.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

struct Block {
    info: String,
    text: String,
    line: usize,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (index, line) in markdown.lines().enumerate() {
        match current.as_mut() {
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    current = Some(Block {
                        info: info.trim().to_string(),
                        text: String::new(),
                        line: index + 1,
                    });
                }
            }
            Some(block) => {
                if line.trim_start().starts_with("```") {
                    out.extend(current.take());
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
        }
    }
    out
}

fn is_variable(key: &str) -> bool {
    ["_id", "Id", "_at", "At", "_ms", "Ms"]
        .iter()
        .any(|suffix| key.ends_with(suffix))
}

/// Compares a documented value with a real one; records documented ids → real ids.
fn compare(
    doc: &Value,
    real: &Value,
    key: &str,
    path: &str,
    subs: &mut HashMap<String, String>,
) -> Result<(), String> {
    match (doc, real) {
        (Value::Object(d), Value::Object(r)) => {
            let mut dk: Vec<_> = d.keys().collect();
            let mut rk: Vec<_> = r.keys().collect();
            dk.sort();
            rk.sort();
            if dk != rk {
                return Err(format!("{path}: keys {dk:?} documented, {rk:?} answered"));
            }
            // Ids first, so that values embedding them (`audit_stream`) compare after.
            let (ids, others): (Vec<_>, Vec<_>) = d.iter().partition(|(k, _)| is_variable(k));
            for (k, v) in ids.into_iter().chain(others) {
                compare(v, &r[k], k, &format!("{path}.{k}"), subs)?;
            }
            Ok(())
        }
        (Value::Array(d), Value::Array(r)) => {
            if d.len() != r.len() {
                return Err(format!(
                    "{path}: {} items documented, {} answered",
                    d.len(),
                    r.len()
                ));
            }
            for (i, (d, r)) in d.iter().zip(r).enumerate() {
                compare(d, r, key, &format!("{path}[{i}]"), subs)?;
            }
            Ok(())
        }
        (Value::String(d), Value::String(r)) if is_variable(key) => {
            if d != r {
                subs.insert(d.clone(), r.clone());
            }
            Ok(())
        }
        (Value::Number(_), Value::Number(_)) if is_variable(key) => Ok(()),
        (Value::String(d), Value::String(r)) if substitute(d, subs) == *r => Ok(()),
        (d, r) if d == r => Ok(()),
        (d, r) => Err(format!("{path}: {d} documented, {r} answered")),
    }
}

fn substitute(text: &str, subs: &HashMap<String, String>) -> String {
    let mut text = text.to_string();
    for (doc, real) in subs {
        text = text.replace(doc.as_str(), real);
    }
    text
}

struct Runner {
    name: String,
    server: ServerProcess,
    subs: HashMap<String, String>,
    sockets: HashMap<String, Socket>,
    ran: usize,
}

impl Runner {
    fn localize(&self, text: &str) -> String {
        substitute(text, &self.subs)
            .replace("localhost:8080", &self.server.rest_addr.to_string())
            .replace("localhost:8081", &self.server.ws_addr.to_string())
    }

    async fn curl(&mut self, block: &Block, expected: Option<&Block>) {
        let command = format!(
            "{} -s -S -w '\\n%{{http_code}}'",
            self.localize(block.text.trim_end())
        );
        let output = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .output()
            .await
            .expect("run sh");
        let at = format!("{} line {}", self.name, block.line);
        assert!(
            output.status.success(),
            "{at}: curl failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
        let status: u16 = status.trim().parse().expect("curl printed the status");
        self.ran += 1;
        let Some(expected) = expected else {
            assert!(
                (200..300).contains(&status),
                "{at}: status {status}: {body}"
            );
            return;
        };
        let documented_status: u16 = expected
            .info
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{at}: give the status after ```json"));
        let real: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{at}: the answer is not JSON ({e}): {body}"));
        let doc: Value = serde_json::from_str(&substitute(&expected.text, &self.subs))
            .unwrap_or_else(|e| panic!("{at}: the documented answer is not JSON ({e})"));
        let pretty = serde_json::to_string_pretty(&real).unwrap();
        assert_eq!(
            status, documented_status,
            "{at}: status {status} answered, {documented_status} documented:\n{pretty}"
        );
        if let Err(problem) = compare(&doc, &real, "", "$", &mut self.subs) {
            panic!("{at}: {problem}\nThe real answer:\n{pretty}");
        }
    }

    async fn session(&mut self, block: &Block) {
        let at = format!("{} line {}", self.name, block.line);
        let mut words = block.info.split_whitespace().skip(1);
        let (path, protocol) = (words.next(), words.next());
        let key = path.unwrap_or("events").to_string();
        if !self.sockets.contains_key(&key) {
            let url = match path {
                Some(path) => format!("ws://{}{path}", self.server.rest_addr),
                None => self.server.ws_url("/ws"),
            };
            let mut request = url.into_client_request().unwrap();
            if let Some(protocol) = protocol {
                request
                    .headers_mut()
                    .insert("sec-websocket-protocol", protocol.parse().unwrap());
            }
            let (socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .unwrap_or_else(|e| panic!("{at}: connect: {e}"));
            self.sockets.insert(key.clone(), socket);
        }
        // Consecutive `<` lines form a group: messages of one subscription (same `id`) must
        // arrive in the documented order, different subscriptions may interleave.
        let lines: Vec<(usize, &str)> = block
            .text
            .lines()
            .enumerate()
            .map(|(offset, line)| (block.line + offset + 1, line.trim()))
            .collect();
        let ends_with_send = lines
            .iter()
            .rev()
            .find(|(_, line)| line.starts_with('>') || line.starts_with('<'))
            .is_some_and(|(_, line)| line.starts_with('>'));
        let mut index = 0;
        while index < lines.len() {
            let (line_no, line) = lines[index];
            let at = format!("{} line {line_no}", self.name);
            if let Some(message) = line.strip_prefix('>') {
                let message = self.localize(message.trim());
                let socket = self.sockets.get_mut(&key).unwrap();
                socket.send(Message::text(message)).await.unwrap();
                self.ran += 1;
                index += 1;
                continue;
            }
            if !line.starts_with('<') {
                index += 1;
                continue;
            }
            let mut group = Vec::new();
            while let Some((line_no, line)) = lines.get(index) {
                let Some(expected) = line.strip_prefix('<') else {
                    break;
                };
                group.push((*line_no, expected.trim().to_string()));
                index += 1;
            }
            while !group.is_empty() {
                let socket = self.sockets.get_mut(&key).unwrap();
                let real = loop {
                    let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
                        .await
                        .unwrap_or_else(|_| panic!("{at}: no message within 10 s"))
                        .unwrap_or_else(|| panic!("{at}: connection closed"))
                        .unwrap_or_else(|e| panic!("{at}: {e}"));
                    if let Message::Text(text) = frame {
                        break serde_json::from_str::<Value>(text.as_str()).unwrap();
                    }
                };
                let docs: Vec<Value> = group
                    .iter()
                    .map(|(line_no, text)| {
                        serde_json::from_str(&substitute(text, &self.subs)).unwrap_or_else(|e| {
                            panic!("{} line {line_no}: not JSON ({e})", self.name)
                        })
                    })
                    .collect();
                let position = docs
                    .iter()
                    .position(|d| d.get("id") == real.get("id"))
                    .unwrap_or(0);
                let (line_no, _) = group.remove(position);
                if let Err(problem) = compare(&docs[position], &real, "", "$", &mut self.subs) {
                    panic!(
                        "{} line {line_no}: {problem}\nThe real message:\n{real}",
                        self.name
                    );
                }
                self.ran += 1;
            }
        }
        if ends_with_send {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

async fn run_document(name: &str) -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(name);
    let markdown = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let curl = std::process::Command::new("curl").arg("--version").output();
    assert!(
        curl.is_ok_and(|o| o.status.success()),
        "curl is needed to run the documented examples"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut runner = Runner {
        name: name.to_string(),
        server: ServerProcess::start(dir.path()).await,
        subs: HashMap::new(),
        sockets: HashMap::new(),
        ran: 0,
    };
    let blocks = blocks(&markdown);
    let mut index = 0;
    while index < blocks.len() {
        let block = &blocks[index];
        let language = block.info.split_whitespace().next().unwrap_or("");
        if language == "bash" && block.text.contains("curl ") {
            let next = blocks
                .get(index + 1)
                .filter(|b| b.info.starts_with("json ") && b.info.len() > 5);
            runner.curl(block, next).await;
            index += if next.is_some() { 2 } else { 1 };
        } else {
            if language == "ws" {
                runner.session(block).await;
            }
            index += 1;
        }
    }
    runner.ran
}

#[tokio::test]
async fn rest_api_examples() {
    let ran = run_document("rest-api.md").await;
    assert!(ran >= 20, "only {ran} examples ran");
}

#[tokio::test]
async fn websocket_api_examples() {
    let ran = run_document("websocket-api.md").await;
    assert!(ran >= 8, "only {ran} examples ran");
}

#[tokio::test]
async fn graphql_api_examples() {
    let ran = run_document("graphql-api.md").await;
    assert!(ran >= 6, "only {ran} examples ran");
}
