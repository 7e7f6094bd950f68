//! `tollgate notify`: notification and SIEM sinks of the caller's tenant
//! (docs/notifications.md).

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;
use tollgate_client::admin::{Delivery, NewSink};

use crate::remote::Remote;

#[derive(Debug, Subcommand)]
pub(crate) enum NotifyCommand {
    /// Add a sink: webhook (Standard Webhooks), slack, cloudevents or splunk_hec.
    #[command(after_help = "Examples:
  tollgate notify add slack https://hooks.slack.com/services/T000/B000/XXXX
  tollgate notify add webhook https://ops.example.com/tollgate   # prints the whsec_ secret once
  tollgate notify add cloudevents https://siem.example.com/ingest --from start
  tollgate notify add splunk_hec https://splunk:8088/services/collector/event --token $HEC_TOKEN
  tollgate notify add webhook https://x.example/hook --event review_opened --event decision")]
    Add {
        /// webhook, slack, cloudevents or splunk_hec.
        kind: String,
        /// Where deliveries go.
        #[arg(value_name = "URL")]
        endpoint: String,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
        /// A ledger entry kind to deliver (repeatable; default by kind).
        #[arg(long = "event")]
        events: Vec<String>,
        /// The Splunk HEC token, or a bearer token for cloudevents.
        #[arg(long, env = "TOLLGATE_SINK_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// `now` (default) or `start` (deliver the whole ledger first).
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the sinks, with cursor, lag, entries in retry and dead.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Send a synthetic event to a sink now.
    #[command(after_help = "Example:
  tollgate notify test snk_0123456789abcdef0123456789abcdef")]
    Test {
        /// Sink id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a sink (its cursor and delivery rows go with it).
    Remove {
        /// Sink id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Dead-lettered deliveries; `--redeliver SEQ --sink ID` puts one back in retry.
    #[command(after_help = "Examples:
  tollgate notify dead
  tollgate notify dead --sink snk_0123… --redeliver 42")]
    Dead {
        /// Only this sink's.
        #[arg(long)]
        sink: Option<String>,
        /// Put the dead delivery of this ledger position back in retry (needs --sink).
        #[arg(long, requires = "sink")]
        redeliver: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn delivery_line(d: &Delivery) -> String {
    format!(
        "{}\t#{}\t{}\t{}\t{} attempts\t{}",
        d.sink_id,
        d.seq,
        d.kind,
        d.state,
        d.attempts,
        d.last_error.as_deref().unwrap_or("")
    )
}

pub(crate) fn run(cmd: NotifyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NotifyCommand::Add {
            kind,
            endpoint,
            name,
            events,
            token,
            from,
            remote,
        } => {
            let new = NewSink {
                kind,
                url: endpoint,
                name,
                events: (!events.is_empty()).then_some(events),
                token,
                from,
            };
            let added = remote.run(|c| async move { c.add_sink(&new).await })?;
            remote.print(&added, |a| {
                let mut text = format!("sink {} added ({})", a.sink.id, a.sink.kind);
                if let Some(s) = &a.secret {
                    text.push_str(&format!("\nsigning secret (shown once; store it now): {s}"));
                }
                text
            })?;
        }
        NotifyCommand::List { remote } => {
            let list = remote.run(|c| async move { c.sinks().await })?;
            remote.print(&json!({ "sinks": list }), |_| {
                if list.is_empty() {
                    return "(none)".to_owned();
                }
                list.iter()
                    .map(|s| {
                        format!(
                            "{}\t{}\t{}\tcursor {}\tlag {}\tpending {}\tdead {}",
                            s.id,
                            s.kind,
                            s.url,
                            s.cursor.unwrap_or(0),
                            s.lag.unwrap_or(0),
                            s.pending.unwrap_or(0),
                            s.dead.unwrap_or(0)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
        }
        NotifyCommand::Test { id, remote } => {
            let t = remote.run(|c| async move { c.test_sink(&id).await })?;
            remote.print(&t, |t| match (&t.status, &t.error) {
                (Some(s), _) => format!("delivered to {} (HTTP {s})", t.sink_id),
                (_, Some(e)) => format!("not delivered to {}: {e}", t.sink_id),
                _ => format!("not delivered to {}", t.sink_id),
            })?;
            if !t.delivered {
                return Ok(ExitCode::from(1));
            }
        }
        NotifyCommand::Remove { id, remote } => {
            let r = remote.run(|c| async move { c.remove_sink(&id).await })?;
            remote.print(&r, |r| format!("sink {} removed", r.id))?;
        }
        NotifyCommand::Dead {
            sink,
            redeliver,
            remote,
        } => {
            if let (Some(seq), Some(sink)) = (redeliver, sink.clone()) {
                let d = remote.run(|c| async move { c.redeliver(&sink, seq).await })?;
                remote.print(&json!({ "delivery": d }), |_| {
                    format!("redelivering #{} to {}", d.seq, d.sink_id)
                })?;
            } else {
                let list = remote
                    .run(|c| async move { c.deliveries(Some("dead"), sink.as_deref()).await })?;
                remote.print(&json!({ "deliveries": list }), |_| {
                    if list.is_empty() {
                        "(none)".to_owned()
                    } else {
                        list.iter()
                            .map(delivery_line)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                })?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
