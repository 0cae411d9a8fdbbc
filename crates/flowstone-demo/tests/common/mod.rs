//! Running the real `flowstone-demo` binary in a folder of its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a run of the binary printed and how it exited.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panics unless stdout contains `text`.
    pub fn stdout_has(&self, text: &str) -> &Self {
        self.has("stdout", &self.stdout, text)
    }

    /// Panics unless stderr contains `text`.
    pub fn stderr_has(&self, text: &str) -> &Self {
        self.has("stderr", &self.stderr, text)
    }

    fn has(&self, stream: &str, printed: &str, text: &str) -> &Self {
        assert!(
            printed.contains(text),
            "{stream} lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// The whitespace-separated cells of the first stdout line that starts with `first`.
    pub fn row(&self, first: &str) -> Vec<&str> {
        self.stdout
            .lines()
            .find(|line| line.starts_with(first))
            .unwrap_or_else(|| panic!("no row starts with {first:?}:\n{}", self.stdout))
            .split_whitespace()
            .collect()
    }

    /// stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A fresh, empty folder named after the test.
pub fn sandbox(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("flowstone-demo-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the test folder");
    dir
}

/// The demo binary run in `dir` with the arguments of `line`, which is split on whitespace
/// (no argument in these tests has a space), and no FlowStone variables from the caller's
/// environment.
fn demo(dir: &Path, line: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowstone-demo"));
    command
        .args(line.split_whitespace())
        .current_dir(dir)
        .env_remove("FLOWSTONE_DATABASE_URL")
        .env_remove("FLOWSTONE_DATA_DIR")
        .env_remove("FLOWSTONE_LOG");
    command
}

/// Runs the demo binary in `dir` with the command line `line` (split on whitespace, see
/// [`demo`]) and waits for it to exit.
pub fn run(dir: &Path, line: &str) -> Ran {
    let output = demo(dir, line).output().expect("run flowstone-demo");
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The demo binary started in `dir` with `line` and `env`, in the background, its output
/// discarded: the caller waits for it.
pub fn spawn(dir: &Path, line: &str, env: &[(&str, &str)]) -> std::process::Child {
    demo(dir, line)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start flowstone-demo")
}

/// A `flowstone-demo worker` running in the background; killed if the test ends early.
pub struct Worker {
    child: Option<std::process::Child>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Worker {
    /// Starts `flowstone-demo worker <options>` in `dir` and waits until it says it is
    /// running.
    pub fn start(dir: &Path, options: &str) -> Worker {
        Self::start_with_env(dir, options, &[])
    }

    /// [`Worker::start`] with extra environment variables.
    pub fn start_with_env(dir: &Path, options: &str, env: &[(&str, &str)]) -> Worker {
        use std::io::BufRead;
        let mut child = demo(dir, &format!("worker {options}"))
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the worker");
        let stderr = child.stderr.take().expect("the worker's stderr");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = send.send(line);
            }
        });
        let worker = Worker {
            child: Some(child),
            lines,
        };
        worker.wait_for_line("running jobs until");
        worker
    }

    /// Waits (up to 30 s) for a line of the worker's stderr containing `text`.
    pub fn wait_for_line(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "the worker never said {text:?}; it said:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Sends SIGTERM and waits for the worker to exit; returns its exit code.
    pub fn terminate(mut self) -> i32 {
        let mut child = self.child.take().expect("a running worker");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_for_line("stopped");
        child
            .wait()
            .expect("wait for the worker")
            .code()
            .unwrap_or(-1)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
