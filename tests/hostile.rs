//! Files, names and values chosen by someone else: a misconfigured
//! `api_socket`, links planted in an export folder, indicator values that
//! read as options, and a reader that closes cerd's output early.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{write_file, TestNode, CERD};

#[test]
fn api_socket_on_the_secret_key_is_refused_and_the_key_kept() {
    let node = TestNode::new("KE-CIRT");
    node.init();
    let key = node.data_dir().join("identity.key");
    let before = std::fs::read(&key).expect("cerd init wrote the key");
    let mut config = std::fs::read_to_string(node.config_path()).unwrap();
    config.push_str("api_socket = \"data/identity.key\"\n");
    write_file(&node.config_path(), config.as_bytes());

    let mut child = Command::new(CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("run")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning cerd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cerd started with api_socket on its own key");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("identity.key"), "{stderr}");
    assert!(stderr.contains("a regular file, not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key is untouched");
}

#[test]
fn cerd_check_into_a_closed_pipe_exits_0() {
    let node = TestNode::new("KE-CIRT");
    node.init();
    let mut child = Command::new(CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("check")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning cerd check");
    // Like `cerd check | head -0`: the reader is gone before any output.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_running_node_refuses_hostile_files_and_values() {
    let node = TestNode::start("KE-CIRT");
    let id = node.file(&[
        "--title",
        "C2 server",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.7",
    ]);

    // An export folder with a link planted where an envelope will go.
    let export = node.json(&["export", "--incident", &id]);
    let envelope = export["envelopes"][0]["id"].as_str().unwrap().to_owned();
    let out = node.dir.path().join("export");
    std::fs::create_dir(&out).unwrap();
    let victim = node.dir.path().join("victim");
    write_file(&victim, b"precious");
    std::os::unix::fs::symlink(&victim, out.join(format!("{envelope}.json"))).unwrap();
    let refused = node.cerctl(&["export", "--incident", &id, "--out", out.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(
        refused
            .stderr
            .contains(&format!("{envelope}.json is a symbolic link")),
        "{refused:#?}"
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // Values that would read as options never get as far as the node.
    for ioc in [
        "filename:-Stouch pwned",
        "email:-oProxyCommand=x@example.com",
    ] {
        let refused = node.cerctl(&["incident", "update", &id, "--note", "more", "--ioc", ioc]);
        assert_eq!(refused.code, 2, "{ioc}: {refused:#?}");
        assert!(
            refused
                .stderr
                .contains("must not start with '-' (it would read as a command-line option)"),
            "{ioc}: {refused:#?}"
        );
    }

    // Playbook check through the node's API: warnings print, exit 0.
    let playbook = node.dir.path().join("lookup.yaml");
    let text = "name: lookup\non: [incident.received]\nactions:\n  - exec:\n      argv: [/bin/echo, \"{indicator.value}\"]\n      for_each_indicator: [filename]\n";
    write_file(&playbook, text.as_bytes());
    let check = node.cerctl(&["playbook", "check", playbook.to_str().unwrap()]);
    assert_eq!(check.ok(), "ok: playbook lookup is valid\n");
    assert!(
        check.stderr.starts_with("warning: ")
            && check.stderr.contains(
                "lookup.yaml:5:25: actions[0].exec.argv[1]: {indicator.value} begins this argument"
            ),
        "{check:#?}"
    );
    write_file(
        &playbook,
        text.replace("/bin/echo, ", "/bin/echo, \"--\", ")
            .as_bytes(),
    );
    let check = node.cerctl(&["playbook", "check", playbook.to_str().unwrap()]);
    assert_eq!(check.ok(), "ok: playbook lookup is valid\n");
    assert_eq!(check.stderr, "", "{check:#?}");
}
