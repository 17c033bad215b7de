//! A newcomer's walk through the README's quick start, run from the README itself: every
//! `sh` block of "Quick start" (its "Several instances on one Redis" included) is taken from
//! README.md, its commands run in order by bash in an empty directory against the binary, and
//! each command's output is checked against the comment indented under it (`#   a, b, not
//! c`). Nothing here is a copy of the README, so the README cannot drift from what the
//! gateway does.
//!
//! Only two things are rewritten: the ports (each one the README names is mapped to a free
//! one, in the commands, the expected output and the shipped `gateway.toml`, so the test never
//! collides with anything), and the command that runs the binary (`cargo run --release --`
//! and `target/release/gateway` are the binary under test). Redis is a `redis-server` of the
//! test's own, standing in for the README's 6379.

mod support;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use support::redis::{free_port, RedisServer};

const README: &str = include_str!("../README.md");
const SHIPPED: &str = include_str!("../gateway.toml");

/// One command of the README, with what its output must and must not contain.
#[derive(Debug)]
struct Step {
    command: String,
    want: Vec<String>,
    not: Vec<String>,
}

/// The `sh` blocks between `## Quick start` and the next `## ` heading.
fn quick_start_blocks() -> Vec<String> {
    let start = README
        .find("\n## Quick start\n")
        .expect("README has a Quick start");
    let section = &README[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section[..end].lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(
        current.is_none(),
        "an sh block of the quick start is not closed"
    );
    blocks
}

/// The commands of a block (continuation lines joined) with their expectations.
fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    let mut last_was_command = false;
    for line in block.lines() {
        if let Some(expect) = line.strip_prefix("#   ") {
            let step = steps
                .last_mut()
                .filter(|_| last_was_command)
                .unwrap_or_else(|| panic!("expected output {line:?} follows no command"));
            for part in expect.split(", ").map(str::trim) {
                match part.strip_prefix("not ") {
                    Some(n) => step.not.push(n.to_owned()),
                    None if part == "..." => {}
                    None => step.want.push(part.to_owned()),
                }
            }
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            last_was_command = false;
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => pending.push_str(head),
            None => {
                pending.push_str(line);
                steps.push(Step {
                    command: std::mem::take(&mut pending),
                    want: Vec::new(),
                    not: Vec::new(),
                });
                last_was_command = true;
            }
        }
    }
    assert!(pending.is_empty(), "a command ends with a continuation");
    steps
}

/// Every port the quick start names, mapped to a free one.
struct Ports(BTreeMap<String, String>);

impl Ports {
    fn new(redis: u16, texts: &[&str]) -> Ports {
        let mut map = BTreeMap::from([("6379".to_owned(), redis.to_string())]);
        for text in texts {
            for word in numbers(text) {
                let n: u32 = word.parse().unwrap_or(0);
                if (1024..65536).contains(&n) && !map.contains_key(&word) {
                    map.insert(word, free_port().to_string());
                }
            }
        }
        Ports(map)
    }

    /// `text` with every whole number that is a mapped port replaced.
    fn apply(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut digits = String::new();
        for c in text.chars().chain(std::iter::once('\0')) {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            if !digits.is_empty() {
                out.push_str(self.0.get(&digits).unwrap_or(&digits));
                digits.clear();
            }
            if c != '\0' {
                out.push(c);
            }
        }
        out
    }
}

/// The port-like numbers of `text`: 4 or 5 digits after a `:` (an address).
fn numbers(text: &str) -> Vec<String> {
    text.split(':')
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|n| (4..=5).contains(&n.len()))
        .collect()
}

/// Output compared without whitespace and case: JSON is pretty-printed, header names vary.
fn squeeze(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Kills the script's process group (the gateways it started in the background) on drop.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.0)])
            .status();
    }
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let bin = env!("CARGO_BIN_EXE_gateway");
    let blocks = quick_start_blocks();
    assert!(
        blocks.len() >= 3,
        "the quick start lost a block: {blocks:?}"
    );
    let redis = RedisServer::start();
    let ports = Ports::new(redis.port(), &[&blocks.concat(), SHIPPED]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), ports.apply(SHIPPED)).unwrap();

    // The script: each command between markers, its exit status after it; a command left
    // running (the gateway, `... &`) writes to a log and is waited for until it listens.
    let mut script = String::from("set -u\nexec 2>&1\n");
    let mut all = Vec::new();
    for (b, block) in blocks.iter().enumerate() {
        for mut step in steps(&ports.apply(block)) {
            step.command = step
                .command
                .replace("cargo run --release --", bin)
                .replace("target/release/gateway", bin);
            let i = all.len();
            script.push_str(&format!("echo '@@ {i}'\n"));
            // The first block is the gateway in the foreground of its own terminal.
            let background = step.command.strip_suffix('&').map(str::trim_end);
            match (b, background) {
                (0, _) | (_, Some(_)) => {
                    let command = background.unwrap_or(&step.command);
                    script.push_str(&format!(
                        "{command} > bg{i}.log 2>&1 < /dev/null &\n\
                         rc=1; for _ in $(seq 300); do \
                         if grep -q 'gateway listening' bg{i}.log; then rc=0; break; fi; \
                         sleep 0.1; done\n\
                         [ $rc = 0 ] || cat bg{i}.log\n"
                    ));
                }
                _ => script.push_str(&format!("{}\nrc=$?\n", step.command)),
            }
            script.push_str(&format!("echo\necho \"@@ {i} rc=$rc\"\n"));
            all.push(step);
        }
    }
    std::fs::write(dir.path().join("walkthrough.sh"), &script).unwrap();

    let child = Command::new("timeout")
        .args(["120", "bash", "walkthrough.sh"])
        .current_dir(dir.path())
        .env_remove("GATEWAY_ADMIN_TOKEN")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("bash");
    let group = Group(child.id());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let logs = gateway_logs(dir.path());
    drop(group);

    let mut failures = Vec::new();
    for (i, step) in all.iter().enumerate() {
        let begin = format!("@@ {i}\n");
        let end = format!("@@ {i} rc=");
        let Some(output) = text
            .split_once(&begin)
            .and_then(|(_, rest)| rest.split_once(&end))
        else {
            failures.push(format!("`{}` never ran", step.command));
            continue;
        };
        let (output, rest) = output;
        let rc = rest.lines().next().unwrap_or_default();
        let got = squeeze(output);
        let mut wrong = Vec::new();
        if rc != "0" {
            wrong.push(format!("exit status {rc}"));
        }
        wrong.extend(
            step.want
                .iter()
                .filter(|w| !got.contains(&squeeze(w)))
                .map(|w| format!("no {w:?}")),
        );
        wrong.extend(
            step.not
                .iter()
                .filter(|n| got.contains(&squeeze(n)))
                .map(|n| format!("has {n:?}")),
        );
        if !wrong.is_empty() {
            failures.push(format!(
                "`{}`: {}\n{}",
                step.command,
                wrong.join("; "),
                output.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "the README's quick start does not work as written:\n\n{}\n\n---- gateway logs\n{logs}",
        failures.join("\n\n")
    );
}

fn gateway_logs(dir: &Path) -> String {
    let mut logs = String::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("bg") && name.ends_with(".log") {
            let body = std::fs::read_to_string(entry.path()).unwrap_or_default();
            logs.push_str(&format!("{name}:\n{body}\n"));
        }
    }
    logs
}

#[test]
fn the_walkthrough_reads_expectations_and_ports() {
    let block =
        "GW=x\ncurl -s a \\\n  -H b\n#   HTTP/2 401, x-id:, not root, ...\n\n# prose\necho 1 # 2\n";
    let s = steps(block);
    assert_eq!(s.len(), 3);
    assert_eq!(s[1].command, "curl -s a -H b");
    assert_eq!(s[1].want, ["HTTP/2 401", "x-id:"]);
    assert_eq!(s[1].not, ["root"]);
    assert!(s[2].want.is_empty());
    let ports = Ports(BTreeMap::from([("8443".to_owned(), "1234".to_owned())]));
    assert_eq!(
        ports.apply("https://h:8443/x 18443 8443"),
        "https://h:1234/x 18443 1234"
    );
    assert_eq!(numbers("a:8443 b:80 [::1]:9000/x"), ["8443", "9000"]);
}
