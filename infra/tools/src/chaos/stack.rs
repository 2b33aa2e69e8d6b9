//! The system under test: `inlet local` on a copy of template.yaml, against a Postgres server
//! of the run's own (which the run may restart) and the emulator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The copy of the template the run uses: the events queue hides a killed batch for
/// `visibility_secs` instead of 60 s and a dedupe lease lasts `lease_secs` instead of 60 s, so
/// redeliveries after a kill come within the run. Everything else is the deployed template.
pub fn chaos_template(
    source: &Path,
    dir: &Path,
    visibility_secs: u32,
    lease_secs: u32,
) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let queue = text
        .find("  EventsQueue:\n")
        .ok_or_else(|| anyhow!("{} has no EventsQueue", source.display()))?;
    let visibility = text[queue..]
        .find("      VisibilityTimeout: ")
        .map(|i| queue + i)
        .ok_or_else(|| anyhow!("EventsQueue has no VisibilityTimeout"))?;
    let line_end = text[visibility..]
        .find('\n')
        .map_or(text.len(), |i| visibility + i);
    let mut copy = String::with_capacity(text.len() + 64);
    copy.push_str(&text[..visibility]);
    copy.push_str(&format!("      VisibilityTimeout: {visibility_secs}"));
    copy.push_str(&text[line_end..]);
    let globals = "        RUST_LOG: !Ref LogLevel\n";
    if !copy.contains(globals) {
        bail!("the template's Globals have no RUST_LOG line to add the lease after");
    }
    let copy = copy.replacen(
        globals,
        &format!("{globals}        INLET_DEDUPE_LEASE_SECS: \"{lease_secs}\"\n"),
        1,
    );
    std::fs::create_dir_all(dir)?;
    let path = dir.join("template.yaml");
    std::fs::write(&path, copy)?;
    Ok(path)
}

pub struct Stack {
    child: Child,
    pub url: String,
    pub prefix: String,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Stack {
    pub async fn start(
        inlet: &Path,
        template: &Path,
        bin_dir: &Path,
        prefix: &str,
        env: &[(&str, String)],
    ) -> anyhow::Result<Stack> {
        let mut command = Command::new(inlet);
        command
            .args([
                "local",
                "--quiet",
                "--port",
                "0",
                "--resource-prefix",
                prefix,
            ])
            .arg("--template")
            .arg(template)
            .arg("--bin-dir")
            .arg(bin_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().context("cannot start inlet local")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let streams: [Box<dyn tokio::io::AsyncRead + Unpin + Send>; 2] = [
            Box::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?),
            Box::new(child.stderr.take().ok_or_else(|| anyhow!("no stderr"))?),
        ];
        for stream in streams {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line);
                    }
                }
            });
        }
        let started = Instant::now();
        let url = loop {
            let ready = lines.lock().ok().and_then(|lines| {
                lines.iter().find_map(|l| {
                    l.split_once("ready: gateway on ")
                        .map(|(_, r)| r.to_owned())
                })
            });
            if let Some(rest) = ready {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("inlet local did not become ready within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(Stack {
            child,
            url,
            prefix: prefix.to_owned(),
            lines,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Lines of the stack's output that contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .map(|lines| lines.iter().filter(|l| l.contains(needle)).count())
            .unwrap_or(0)
    }

    /// Ctrl-C, as an operator would stop it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
    }
}
