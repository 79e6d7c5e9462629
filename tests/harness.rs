//! Starts real `cerd` processes in short temporary folders and drives them
//! with cerctl's library entry point. Never sleeps a fixed time: every
//! wait polls with a deadline. A node's log is printed if a test fails
//! while the node is alive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CERD: &str = env!("CARGO_BIN_EXE_cerd");

/// A cerd process with its own data dir, config and log.
pub struct TestNode {
    pub name: String,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
}

/// What one cerctl invocation returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "cerctl failed: {self:#?}");
        &self.stdout
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

impl TestNode {
    /// A node named `name` with a fresh data dir; not started yet.
    pub fn new(name: &str) -> TestNode {
        // Unix socket paths are limited to ~108 bytes: keep the folder short.
        let dir = tempfile::Builder::new()
            .prefix("cer")
            .tempdir_in("/tmp")
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("certs")).unwrap();
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        let config = format!(
            "name = \"{name}\"\ndata_dir = \"data\"\nlisten = \"127.0.0.1:0\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\n"
        );
        std::fs::write(dir.path().join("cerd.toml"), config).unwrap();
        TestNode {
            name: name.to_owned(),
            dir,
            child: None,
        }
    }

    /// A started node.
    pub fn start(name: &str) -> TestNode {
        let mut node = TestNode::new(name);
        node.spawn();
        node
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("cerd.toml")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir().join("cerd.sock")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("cerd.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Creates the node's identity (`cerd init`) without starting it.
    pub fn init(&self) {
        let (ok, text) = run(Command::new(CERD)
            .arg("--config")
            .arg(self.config_path())
            .args(["init", "--name", &self.name]));
        assert!(ok, "cerd init {}: {text}", self.name);
    }

    /// The node's public certificate, as `cerd init` wrote it.
    pub fn cert_path(&self) -> PathBuf {
        self.data_dir().join(format!("{}.asc", self.name))
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Puts `other`'s certificate in this node's trust store.
    pub fn trust(&self, other: &TestNode) {
        std::fs::copy(
            other.cert_path(),
            self.certs_dir().join(format!("{}.asc", other.name)),
        )
        .unwrap();
    }

    /// Adds a `[[peer]]` for this node to dial.
    pub fn add_peer(&self, addr: &str) {
        let mut config = std::fs::read_to_string(self.config_path()).unwrap();
        config.push_str(&format!("\n[[peer]]\naddr = \"{addr}\"\n"));
        std::fs::write(self.config_path(), config).unwrap();
    }

    /// The QUIC address the running node listens on.
    pub fn listen_addr(&self) -> String {
        self.status()["listen"]
            .as_str()
            .expect("listen address")
            .to_owned()
    }

    /// Keeps the port the node got, so a restart listens on the same one.
    pub fn pin_listen(&self) {
        let addr = self.listen_addr();
        let config = std::fs::read_to_string(self.config_path())
            .unwrap()
            .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
        std::fs::write(self.config_path(), config).unwrap();
    }

    pub fn fingerprint(&self) -> String {
        let cert = std::fs::read_to_string(self.cert_path()).unwrap_or_default();
        assert!(!cert.is_empty(), "{} has no certificate yet", self.name);
        self.status()["fingerprint"].as_str().unwrap().to_owned()
    }

    /// Starts the process and waits until its API answers.
    pub fn spawn(&mut self) {
        self.spawn_with(&[]);
    }

    /// Like [`TestNode::spawn`], with extra environment variables.
    pub fn spawn_with(&mut self, env: &[(&str, &str)]) {
        self.spawn_unready(env);
        self.wait_ready();
    }

    /// Starts the process and returns at once, without waiting for its
    /// API: for tests that watch start-up themselves.
    pub fn spawn_unready(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "{} already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(CERD)
            .arg("--config")
            .arg(self.config_path())
            .arg("run")
            .env("CERD_LOG", "info,cerd=debug,sled=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning cerd");
        self.child = Some(child);
    }

    /// Sends the running node a signal (SIGHUP: reload).
    pub fn signal(&self, sig: i32) {
        signal(self.child.as_ref().expect("the node is running"), sig);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "{} exited during start-up ({status}):\n{}",
                    self.name,
                    self.log()
                );
            }
            if self.socket().exists() && self.cerctl(&["status"]).code == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within 60s:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the node with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        status.success(),
                        "{} exited with {status}:\n{}",
                        self.name,
                        self.log()
                    );
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "{} did not stop within 20s of SIGTERM:\n{}",
                        self.name,
                        self.log()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills the node with SIGKILL, no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGKILL);
            let _ = child.wait();
        }
    }

    /// Runs `cerd --config <this node's> ARGS` to completion: exit code
    /// and everything it printed. One still running after 30 s is killed
    /// and reported with code -1 (a `cerd run` that did not refuse).
    pub fn cerd(&self, args: &[&str]) -> (i32, String) {
        self.cerd_env(args, &[])
    }

    /// [`TestNode::cerd`] with these environment variables set.
    pub fn cerd_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
        let out = self.dir.path().join("cerd-command.out");
        let file = std::fs::File::create(&out).unwrap();
        let mut child = Command::new(CERD)
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("CERD_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("running cerd");
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break -1;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (code, std::fs::read_to_string(&out).unwrap_or_default())
    }

    /// Files a low-severity TLP:GREEN `test/test` incident with this title;
    /// returns its id.
    pub fn file_test(&self, title: &str) -> String {
        self.file(&[
            "--title",
            title,
            "--severity",
            "low",
            "--tlp",
            "green",
            "--class",
            "test/test",
        ])
    }

    /// Runs cerctl against this node.
    pub fn cerctl(&self, args: &[&str]) -> Output {
        self.cerctl_stdin(args, "")
    }

    /// Runs cerctl against this node with `stdin` as standard input.
    pub fn cerctl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let socket = self.socket();
        let mut argv: Vec<String> = vec![
            "cerctl".into(),
            "--socket".into(),
            socket.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| a.to_string()));
        cerctl_raw(&argv, stdin)
    }

    /// Runs cerctl with `--json` and parses its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.cerctl(&all).json()
    }

    /// Files an incident from flags and returns its id.
    pub fn file(&self, args: &[&str]) -> String {
        let mut all = vec!["incident", "file"];
        all.extend_from_slice(args);
        let out = self.cerctl(&all);
        out.ok().trim().to_owned()
    }

    pub fn status(&self) -> serde_json::Value {
        self.json(&["status"])
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- log of {} -----\n{}\n----- end of log -----",
                self.name,
                self.log()
            );
        }
        if let Some(mut child) = self.child.take() {
            signal(&child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if child.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs cerctl's library entry point with full argv.
pub fn cerctl_raw(argv: &[String], stdin: &str) -> Output {
    let mut input = stdin.as_bytes();
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let code = cerctl::main_with(
        argv.iter().map(std::ffi::OsString::from),
        &mut input,
        &mut stdout,
        &mut stderr,
    );
    Output {
        code,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY-free: libc::kill on our own child's pid.
    let pid = child.id() as i32;
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Polls `f` until it returns Some, or panics after `timeout`.
#[track_caller]
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command, returning (success, stdout+stderr).
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("running command");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn write_file(path: &Path, contents: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(contents).unwrap();
}
