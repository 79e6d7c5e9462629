use super::*;

const DESIGN_EXAMPLE: &str = r#"name: block-c2-addresses
description: Block C2 IPs reported by trusted peers
on: [incident.received, incident.filed, incident.updated]   # also: sighting.received, retraction.received, mesh.equivocation
match:
  severity_at_least: high
  classification: [malicious-code/c2-server, malicious-code/malware-distribution]
  tlp: [clear, green, amber]
  from: any            # or: own, or a list of fingerprints / names
  has_indicator: [ipv4, ipv6]
max_tlp: amber         # actions never see data above this label
actions:
  - exec:
      argv: ["/usr/local/sbin/block-ip", "{indicator.value}"]
      for_each_indicator: [ipv4, ipv6]
      timeout: 30s
  - webhook:
      url: "http://127.0.0.1:9000/cert-hook"
      timeout: 5s
  - tag: blocked
"#;

#[test]
fn accepts_the_design_example() {
    let playbook = parse(DESIGN_EXAMPLE, "playbooks/block-c2.yaml").unwrap();
    assert_eq!(playbook.name, "block-c2-addresses");
    assert_eq!(
        playbook.on,
        [
            EventKind::IncidentReceived,
            EventKind::IncidentFiled,
            EventKind::IncidentUpdated
        ]
    );
    assert_eq!(playbook.max_tlp, Tlp::Amber);
    assert_eq!(playbook.matcher.severity_at_least, Some(Severity::High));
    assert_eq!(playbook.matcher.tlp, [Tlp::Clear, Tlp::Green, Tlp::Amber]);
    assert_eq!(playbook.matcher.from, From::Any);
    assert_eq!(
        playbook.matcher.has_indicator,
        [IndicatorType::Ipv4, IndicatorType::Ipv6]
    );
    assert_eq!(playbook.actions.len(), 3);
    let Action::Exec(exec) = &playbook.actions[0] else {
        panic!("not exec");
    };
    assert_eq!(exec.program, Path::new("/usr/local/sbin/block-ip"));
    assert_eq!(
        exec.args[0].parts(),
        [Part::Placeholder(Placeholder::IndicatorValue)]
    );
    assert_eq!(exec.timeout, Duration::from_secs(30));
    assert!(exec.env.is_empty());
    let Action::Webhook(hook) = &playbook.actions[1] else {
        panic!("not webhook");
    };
    assert_eq!(hook.url.host, "127.0.0.1");
    assert_eq!(hook.url.port, 9000);
    assert_eq!(hook.url.target, "/cert-hook");
    assert_eq!(hook.timeout, Duration::from_secs(5));
    assert_eq!(hook.retries, DEFAULT_WEBHOOK_RETRIES);
    assert_eq!(
        playbook.actions[2],
        Action::Tag("blocked".into(), When::Success)
    );
}

#[test]
fn every_example_playbook_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
    let (playbooks, errors) = load_dir(&dir);
    let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let mut names: Vec<&str> = playbooks.iter().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "block-c2-addresses",
            "equivocation-alert",
            "open-ticket",
            "page-critical",
            "phishing-rpz"
        ]
    );
    // The examples are what people copy: no warnings either.
    for playbook in &playbooks {
        assert_eq!(playbook.warnings, [], "{}", playbook.file.display());
    }
    // And none runs until the operator turns it on.
    for playbook in &playbooks {
        assert!(!playbook.enabled, "{} is enabled", playbook.file.display());
    }
    // Scripts next to the playbooks are found wherever the folder is.
    for playbook in &playbooks {
        for action in &playbook.actions {
            if let Action::Exec(exec) = action {
                assert!(exec.program.is_absolute(), "{}", exec.program.display());
                assert!(exec.program.is_file(), "{}", exec.program.display());
            }
        }
    }
}

fn error_of(text: &str) -> String {
    match parse(text, "t.yaml") {
        Ok(p) => panic!("accepted: {p:?}\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// A valid playbook with one line swapped in, at line 4.
fn with_line(line: &str) -> String {
    format!("name: t\non: [incident.received]\nactions: [{{tag: x}}]\n{line}\n")
}

/// A valid playbook whose only action is an exec with these lines
/// (indented under `exec:`, starting at line 5).
fn with_exec(lines: &str) -> String {
    let body: String = lines.lines().map(|l| format!("      {l}\n")).collect();
    format!("name: t\non: [incident.received]\nactions:\n  - exec:\n{body}")
}

#[test]
fn errors_name_file_line_column_and_field() {
    let cases: &[(String, &str)] = &[
        (with_line("bogus: 1"), "t.yaml:4:1: bogus: unknown key; valid keys here: name, description, enabled, on, match, max_tlp, limits, actions"),
        (with_line("match: {severity: high}"), "t.yaml:4:9: match.severity: unknown key"),
        (with_line("match: {severity_at_least: urgent}"), "t.yaml:4:28: match.severity_at_least: unknown value 'urgent'; valid values: low, medium, high, critical"),
        (with_line("match: {classification: [fraud/phising]}"), "t.yaml:4:26: match.classification[0]: unknown value 'fraud/phising'"),
        (with_line("match: {classification: [\"nonsense/*\"]}"), "t.yaml:4:26: match.classification[0]: unknown class 'nonsense'"),
        (with_line("match: {tlp: [red]}"), "t.yaml:4:15: match.tlp[0]: red is above max_tlp green (the default), so this would never run; set max_tlp: red"),
        (with_line("max_tlp: amber\nmatch: {tlp: [green, amber+strict]}"), "t.yaml:5:22: match.tlp[1]: amber+strict is above max_tlp amber"),
            (with_line("max_tlp: purple"), "t.yaml:4:10: max_tlp: unknown value 'purple'"),
        (with_line("match: {has_indicator: [ip]}"), "t.yaml:4:25: match.has_indicator[0]: unknown value 'ip'"),
        (with_line("match: {tags: [two words]}"), "t.yaml:4:16: match.tags[0]: 'two words' contains ' '"),
        (with_line("match: {from: everyone}"), "t.yaml:4:15: match.from: 'everyone' is not any, own, peers or a list"),
        (with_line("match: {tlp: [green, green]}"), "t.yaml:4:22: match.tlp[1]: is listed twice"),
        ("name: t\non: [incident.recieved]\nactions: [{tag: x}]\n".into(), "t.yaml:2:6: on[0]: unknown event 'incident.recieved'; valid events: incident.filed, incident.received"),
        ("name: t\non: []\nactions: [{tag: x}]\n".into(), "t.yaml:2:5: on: must list at least one event"),
        ("name: Block C2\non: [peer.up]\nactions: [{tag: x}]\n".into(), "t.yaml:1:7: name: 'Block C2' must be 1 to 64 lower-case letters"),
        ("on: [peer.up]\nactions: [{tag: x}]\n".into(), "t.yaml:1:1: name: is required"),
        ("name: t\non: [peer.up]\n".into(), "t.yaml:1:1: actions: is required"),
        ("name: t\non: [peer.up]\nactions: []\n".into(), "t.yaml:3:10: actions: must list at least one action"),
        ("name: t\non: [peer.up]\nactions:\n  - shell: rm -rf /\n".into(), "t.yaml:4:5: actions[0].shell: unknown key; valid keys here: exec, webhook, tag, note"),
        ("name: t\non: [peer.up]\nactions:\n  - {tag: a, note: b}\n".into(), "t.yaml:4:5: actions[0]: an action has exactly one of exec, webhook, tag, note; found tag and note"),
        ("name: t\non: [peer.up]\nactions:\n  - note: \"about {incident.id}\"\n".into(), "t.yaml:4:11: actions[0].note: {incident.id} is not expanded here; placeholders are only substituted in exec argv"),
        ("name: t\non: [peer.up]\nactions:\n  - tag: Two Words\n".into(), "t.yaml:4:10: actions[0].tag: 'two words' contains ' '"),
        (with_exec("argv: [/bin/x, \"{incident.title}\"]"), "t.yaml:5:22: actions[0].exec.argv[1]: unknown placeholder {incident.title}; valid placeholders: {incident.id}, {incident.severity}"),
        (with_exec("argv: [/bin/x, \"{indicator.value}\"]"), "t.yaml:4:5: actions[0].exec.argv[1]: {indicator.value} needs for_each_indicator"),
            (with_exec("argv: [/bin/x, \"{peer}\"]"), "t.yaml:4:5: actions[0].exec.argv[1]: {peer} is not available on incident.received"),
        (with_exec("argv: [/bin/x, \"a{b\"]"), "t.yaml:5:22: actions[0].exec.argv[1]: unclosed '{'; write {{ for a literal brace"),
        (with_exec("argv: [/bin/x, \"a}b\"]"), "t.yaml:5:22: actions[0].exec.argv[1]: unmatched '}'; write }} for a literal brace"),
        (with_exec("argv: [\"/bin/{incident.id}\"]"), "t.yaml:5:14: actions[0].exec.argv[0]: the program is fixed"),
        (with_exec("argv: []"), "t.yaml:5:13: actions[0].exec.argv: must name at least the program"),
        (with_exec("argv: [/bin/x]\nbogus: 1"), "t.yaml:6:7: actions[0].exec.bogus: unknown key; valid keys here: argv, for_each_indicator, timeout, env, cwd"),
        (with_exec("argv: [/bin/x]\ntimeout: 2h"), "t.yaml:6:16: actions[0].exec.timeout: must be at most 1h"),
        (with_exec("argv: [/bin/x]\ntimeout: 30"), "t.yaml:6:16: actions[0].exec.timeout: expected a duration such as 30s or 2m, got an integer"),
            (with_exec("argv: [/bin/x]\ntimeout: 0s"), "t.yaml:6:16: actions[0].exec.timeout: must be longer than zero"),
        (with_exec("argv: [/bin/x]\ntimeout: soon"), "t.yaml:6:16: actions[0].exec.timeout: 'soon' is not a duration"),
        (with_exec("argv: [/bin/x]\nenv: {CER_INCIDENT_ID: x}"), "t.yaml:6:13: actions[0].exec.env.CER_INCIDENT_ID: this variable is set by cerd"),
        (with_exec("argv: [/bin/x]\nenv: {\"A B\": x}"), "t.yaml:6:13: actions[0].exec.env.A B: a variable name is letters"),
        (with_exec("argv: [/bin/x]\nenv: {A: \"{incident.id}\"}"), "t.yaml:6:16: actions[0].exec.env.A: {incident.id} is not expanded here"),
        (with_exec("argv: [/bin/x]\nfor_each_indicator: [ipv4, ipv4]"), "t.yaml:6:34: actions[0].exec.for_each_indicator[1]: is listed twice"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"ftp://x.example/\"}\n".into(), "t.yaml:4:20: actions[0].webhook.url: 'ftp://x.example/' is not an http:// or https:// URL"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x.example:99999/\"}\n".into(), "t.yaml:4:20: actions[0].webhook.url: the URL's port is not a number from 1 to 65535"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/{incident.id}\"}\n".into(), "t.yaml:4:20: actions[0].webhook.url: {incident.id} is not expanded here"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {timeout: 5s}\n".into(), "t.yaml:4:14: actions[0].webhook.url: is required"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/\", retries: 99}\n".into(), "t.yaml:4:42: actions[0].webhook.retries: must be a whole number from 0 to 10"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/\", headers: {Host: evil}}\n".into(), "t.yaml:4:43: actions[0].webhook.headers.Host: this header is set by cerd"),
        ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/\", headers: {X-A: \"a\\r\\nB: c\"}}\n".into(), "t.yaml:4:48: actions[0].webhook.headers.X-A: a header value must be printable ASCII on one line"),
        ("name: t\non: [peer.down]\nmatch: {severity_at_least: high}\nactions: [{tag: x}]\n".into(), "t.yaml:3:8: match: conditions on the incident (severity, classification, tlp, indicators, tags) do not apply to peer.down"),
        ("name: t\non: [mesh.equivocation]\nactions:\n  - exec: {argv: [/bin/x], for_each_indicator: [ipv4]}\n".into(), "t.yaml:4:5: actions[0].exec.for_each_indicator: mesh.equivocation has no indicators to run for"),
            ("name: t\non: [retraction.received]\nactions:\n  - exec: {argv: [/bin/x, \"{incident.severity}\"]}\n".into(), "t.yaml:4:5: actions[0].exec.argv[1]: {incident.severity} is not available on retraction.received"),
        ("name: t\nname: u\non: [peer.up]\nactions: [{tag: x}]\n".into(), "t.yaml:2:1: duplicate mapping key `name` is not allowed here"),
        ("name: [t\n".into(), "t.yaml:1:7: unclosed bracket '['"),
        ("".into(), "t.yaml:1:1: playbook: expected a mapping, got nothing"),
        ("- a\n- b\n".into(), "t.yaml:1:1: playbook: expected a mapping, got a list"),
    ];
    let mut failures = Vec::new();
    for (text, want) in cases {
        let got = error_of(text);
        if !got.starts_with(want) {
            failures.push(format!("want: {want}\n got: {got}\n---\n{text}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = "name: Bad Name\non: [incident.received, nonsense]\nmatch:\n  severity_at_least: urgent\n  colour: red\nactions:\n  - exec: {argv: [/bin/x, \"{incident.title}\"], timeout: forever}\n";
    let errors = parse_all(text, "t.yaml").unwrap_err();
    let fields: Vec<String> = errors
        .iter()
        .map(|e| match e {
            PlaybookError::Invalid { field, line, .. } => format!("{line} {field}"),
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            "1 name",
            "2 on[1]",
            "4 match.severity_at_least",
            "5 match.colour",
            "7 actions[0].exec.argv[1]",
            "7 actions[0].exec.timeout",
        ]
    );
    // parse gives the first.
    assert!(parse(text, "t.yaml")
        .unwrap_err()
        .to_string()
        .starts_with("t.yaml:1:7: name:"));
}

#[test]
fn enabled_and_when_are_checked() {
    let base = "name: t\non: [incident.received]\n";
    let ok = |text: &str| parse(&format!("{base}{text}"), "t.yaml").unwrap();
    assert!(ok("actions:\n  - tag: x\n").enabled);
    assert!(!ok("enabled: false\nactions:\n  - tag: x\n").enabled);
    assert_eq!(
        ok("actions:\n  - note: n\n    when: always\n").actions[0],
        Action::Note("n".into(), When::Always)
    );
    let error = |text: &str| {
        parse(&format!("{base}{text}"), "t.yaml")
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        error("enabled: no\nactions:\n  - tag: x\n"),
        "t.yaml:3:10: enabled: expected true or false, got a string"
    );
    assert_eq!(
        error("actions:\n  - tag: x\n    when: sometimes\n"),
        "t.yaml:5:11: actions[0].when: 'sometimes' is not one of success, failure, always"
    );
    assert_eq!(
        error("actions:\n  - exec:\n      argv: [/bin/true]\n    when: always\n"),
        "t.yaml:6:11: actions[0].when: applies to tag and note actions only, not to exec"
    );
}

#[test]
fn yaml_one_one_booleans_stay_strings() {
    let playbook = parse(
        "name: t\non: [peer.up]\nactions:\n  - tag: no\n  - exec: {argv: [/bin/echo, yes, off, 10]}\n",
        "t.yaml",
    )
    .unwrap();
    assert_eq!(playbook.actions[0], Action::Tag("no".into(), When::Success));
    let Action::Exec(exec) = &playbook.actions[1] else {
        panic!("not exec");
    };
    let args: Vec<String> = exec.args.iter().map(|a| a.to_string()).collect();
    assert_eq!(args, ["yes", "off", "10"]);
}

#[test]
fn templates_expand_once_and_never_rescan() {
    let template = Template::parse("--ip={indicator.value}/{{32}}").unwrap();
    assert_eq!(
        template.parts(),
        [
            Part::Text("--ip=".into()),
            Part::Placeholder(Placeholder::IndicatorValue),
            Part::Text("/{32}".into()),
        ]
    );
    assert_eq!(template.to_string(), "--ip={indicator.value}/{{32}}");
    let value = |p: Placeholder| match p {
        Placeholder::IndicatorValue => Some("{incident.id}$(x)".to_owned()),
        Placeholder::IncidentId => Some("SHOULD-NOT-APPEAR".to_owned()),
        _ => None,
    };
    assert_eq!(
        template.expand(value).as_deref(),
        Some("--ip={incident.id}$(x)/{32}")
    );
    assert_eq!(Template::parse("{event}").unwrap().expand(|_| None), None);
    assert_eq!(
        Template::parse("").unwrap().expand(|_| None).as_deref(),
        Some("")
    );
    for p in Placeholder::ALL {
        assert_eq!(Placeholder::parse(p.as_str()), Some(p));
    }
    for e in EventKind::ALL {
        assert_eq!(EventKind::parse(e.as_str()), Some(e));
    }
}

#[test]
fn relative_programs_and_folders_are_resolved_against_the_playbook() {
    let playbook = parse(
        "name: t\non: [peer.up]\nactions:\n  - exec: {argv: [./bin/x], cwd: work}\n  - exec: {argv: [logger]}\n  - exec: {argv: [/usr/bin/x]}\n",
        "/etc/cerd/playbooks/t.yaml",
    )
    .unwrap();
    let programs: Vec<(&Path, Option<&Path>)> = playbook
        .actions
        .iter()
        .map(|a| match a {
            Action::Exec(e) => (e.program.as_path(), e.cwd.as_deref()),
            _ => panic!("not exec"),
        })
        .collect();
    assert_eq!(
        programs,
        [
            (
                Path::new("/etc/cerd/playbooks/./bin/x"),
                Some(Path::new("/etc/cerd/playbooks/work"))
            ),
            (Path::new("logger"), None),
            (Path::new("/usr/bin/x"), None),
        ]
    );
}

#[test]
fn webhook_urls() {
    let ok = |text: &str| WebhookUrl::parse(text).unwrap();
    let url = ok("http://127.0.0.1:9000/cert-hook?x=1");
    assert_eq!(
        (url.host.as_str(), url.port, url.target.as_str()),
        ("127.0.0.1", 9000, "/cert-hook?x=1")
    );
    assert_eq!(url.authority(), "127.0.0.1:9000");
    assert_eq!(url.to_string(), "http://127.0.0.1:9000/cert-hook?x=1");
    let url = ok("HTTP://tickets.example");
    assert_eq!((url.port, url.target.as_str()), (80, "/"));
    let url = ok("http://[::1]:8080?q");
    assert_eq!((url.host.as_str(), url.target.as_str()), ("::1", "/?q"));
    assert_eq!(url.authority(), "[::1]:8080");
    for bad in [
        "ftp://x/",
        "http://",
        "http://user:pw@x/",
        "http://x/#frag",
        "http://x y/",
        "http://x/\n",
        "http://x:0/",
        "http://[::1/",
        "http://x/ü",
        "http://a;b/",
    ] {
        assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn load_dir_reports_duplicates_and_bad_files_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("a.yaml", "name: same\non: [peer.up]\nactions: [{tag: a}]\n");
    write(
        "b.yml",
        "# comment\nname: same\non: [peer.up]\nactions: [{tag: b}]\n",
    );
    write(
        "c.yaml",
        "name: c\non: [peer.up]\nactions: [{tag: c}]\nextra: 1\n",
    );
    write("d.yaml", "name: d\non: [peer.up]\nactions: [{tag: d}]\n");
    write(".hidden.yaml", "not: valid\n");
    write("notes.txt", "not: valid\n");
    std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
    let (playbooks, errors) = load_dir(dir.path());
    let names: Vec<&str> = playbooks.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["same", "d"]);
    let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yml");
    let c = dir.path().join("c.yaml");
    assert_eq!(
        errors,
        [
            format!(
                "{}:2:1: name: playbook 'same' is already defined in {}",
                b.display(),
                a.display()
            ),
            format!(
                "{}:4:1: extra: unknown key; valid keys here: name, description, enabled, on, match, max_tlp, limits, actions",
                c.display()
            ),
        ]
    );
    assert_eq!(
        load(&dir.path().join("d.yaml")).unwrap().file,
        dir.path().join("d.yaml")
    );
    let missing = load(&dir.path().join("nope.yaml")).unwrap_err();
    assert!(matches!(missing, PlaybookError::Read { .. }), "{missing}");
    assert!(
        missing.to_string().contains("nope.yaml: cannot read"),
        "{missing}"
    );
    let (none, errors) = load_dir(&dir.path().join("absent"));
    assert!(none.is_empty());
    assert!(errors[0]
        .to_string()
        .contains("cannot read the playbook folder"));
}

#[test]
fn huge_and_binary_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
    assert!(load(&big)
        .unwrap_err()
        .to_string()
        .contains("not a playbook"));
    let binary = dir.path().join("bin.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    assert!(load(&binary).unwrap_err().to_string().contains("not UTF-8"));
}

#[test]
fn error_text_escapes_control_characters() {
    for text in [
        "name: t\non: [\"peer.up\\u001b[31m\"]\nactions: [{tag: x}]\n",
        "name: t\non: [peer.up]\nactions: [{tag: \"a\\u001bb\"}]\n",
        "name: t\non: [peer.up]\nactions: [{exec: {argv: [x], env: {\"A\\u001b\": b}}}]\n",
    ] {
        let err = error_of(text);
        assert!(!err.contains('\u{1b}'), "{err}");
        assert!(err.contains("\\u{1b}"), "{err}");
    }
}

fn warnings_of(argv: &str) -> Vec<String> {
    let text = format!(
        "name: t\non: [incident.received]\nactions:\n  - exec:\n      argv: {argv}\n      for_each_indicator: [filename, email]\n"
    );
    match parse(&text, "t.yaml") {
        Ok(playbook) => playbook.warnings.iter().map(|w| w.to_string()).collect(),
        Err(e) => panic!("refused: {e}\n{text}"),
    }
}

#[test]
fn an_unguarded_indicator_value_argument_is_a_warning() {
    let warnings = warnings_of(r#"["/bin/x", "{indicator.value}"]"#);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("t.yaml:5:24: actions[0].exec.argv[1]: {indicator.value} begins this argument and neither \"--\" nor a fixed option comes before it"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("would be read as an option"));
    // Beginning the argument is enough: `-x.txt` is an option too.
    assert_eq!(
        warnings_of(r#"["/bin/x", "-v", "{incident.id}", "{indicator.value}.txt"]"#).len(),
        1
    );
    // Each unguarded argument is named.
    let both = warnings_of(r#"["/bin/x", "{indicator.value}", "{indicator.value}"]"#);
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(both[1].contains("argv[2]"), "{both:?}");
}

#[test]
fn a_guarded_or_typed_argument_is_not_a_warning() {
    for argv in [
        r#"["/bin/x", "--", "{indicator.value}"]"#,
        r#"["/bin/x", "--", "{incident.id}", "{indicator.value}"]"#,
        r#"["/bin/x", "--address", "{indicator.value}"]"#,
        r#"["/bin/x", "-a", "{indicator.value}"]"#,
        r#"["/bin/x", "--address={indicator.value}"]"#,
        r#"["/bin/x", "ioc:{indicator.value}"]"#,
        r#"["/bin/x", "{incident.id}", "{indicator.type}", "{incident.reporter}"]"#,
    ] {
        assert_eq!(warnings_of(argv), Vec::<String>::new(), "{argv}");
    }
    // An option only guards the argument right after it.
    assert_eq!(
        warnings_of(r#"["/bin/x", "-a", "{indicator.value}", "{indicator.value}"]"#).len(),
        1
    );
    // A placeholder is not a fixed option, nor a `--` made of one.
    assert_eq!(
        warnings_of(r#"["/bin/x", "-{indicator.type}", "{indicator.value}"]"#).len(),
        1
    );
}

#[test]
fn for_each_limits_and_per_action_events_are_read_and_checked() {
    let playbook = parse(
        r#"name: t
on: [incident.received, retraction.received, indicator.removed]
limits: { max_runs_per_minute: 30, max_indicators_per_run: 500 }
actions:
  - exec:
      argv: [/bin/true, "{indicator.value}"]
      for_each_indicator: { types: [ipv4, domain], only: all }
    on: [incident.received]
  - exec:
      argv: [/bin/true, "{indicator.value}"]
      for_each_indicator: [ipv4]
    on: [retraction.received, indicator.removed]
  - note: done
    when: failure
"#,
        "t.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        playbook.limits,
        Limits {
            max_runs_per_minute: Some(30),
            max_indicators_per_run: Some(500)
        }
    );
    let Action::Exec(first) = &playbook.actions[0] else {
        panic!("not exec");
    };
    assert_eq!(
        first.for_each_indicator,
        Some(ForEach {
            types: vec![IndicatorType::Ipv4, IndicatorType::Domain],
            only: Only::All
        })
    );
    let Action::Exec(second) = &playbook.actions[1] else {
        panic!("not exec");
    };
    assert_eq!(
        second.for_each_indicator.as_ref().unwrap().only,
        Only::Added
    );
    assert!(playbook.action_runs_on(0, EventKind::IncidentReceived));
    assert!(!playbook.action_runs_on(0, EventKind::RetractionReceived));
    assert!(playbook.action_runs_on(1, EventKind::IndicatorRemoved));
    assert!(playbook.action_runs_on(2, EventKind::RetractionReceived));
    assert_eq!(
        playbook.actions[2],
        Action::Note("done".into(), When::Failure)
    );

    let error = |text: &str| parse(text, "t.yaml").unwrap_err().to_string();
    // Blocking and unblocking in one action is refused: which would it do?
    assert_eq!(
        error("name: t\non: [incident.received, retraction.received]\nactions:\n  - exec:\n      argv: [/bin/true, \"{indicator.value}\"]\n      for_each_indicator: [ipv4]\n"),
        "t.yaml:4:5: actions[0]: this action would run for the incident's indicators on incident.received and for the ones taken back on retraction.received; give it its own on: [..] (e.g. one action to block on incident.received, another to unblock on retraction.received)"
    );
    assert_eq!(
        error("name: t\non: [incident.received]\nactions:\n  - tag: x\n    on: [peer.up]\n"),
        "t.yaml:4:5: actions[0].on: peer.up is not in the playbook's on, so this action would never run for it"
    );
    assert_eq!(
        error("name: t\non: [incident.received]\nlimits: { max_runs_per_minute: 0 }\nactions:\n  - tag: x\n"),
        "t.yaml:3:32: limits.max_runs_per_minute: must be a whole number from 1 to 1000000"
    );
    assert_eq!(
        error("name: t\non: [incident.received]\nlimits: { per_hour: 3 }\nactions:\n  - tag: x\n"),
        "t.yaml:3:11: limits.per_hour: unknown key; valid keys here: max_runs_per_minute, max_indicators_per_run"
    );
    assert_eq!(
        error("name: t\non: [incident.received]\nactions:\n  - exec:\n      argv: [/bin/true]\n      for_each_indicator: { types: [ipv4], only: new }\n"),
        "t.yaml:6:50: actions[0].exec.for_each_indicator.only: 'new' is not added or all"
    );
    assert_eq!(
        error("name: t\non: [playbook.paused]\nactions:\n  - exec:\n      argv: [/bin/true, \"{peer}\"]\n"),
        "t.yaml:4:5: actions[0].exec.argv[1]: {peer} is not available on playbook.paused"
    );
}

/// Every playbook in the README and in playbooks/README.md (a ```yaml
/// block with `name:` and `actions:`) is one cerd would load.
#[test]
fn documented_playbooks_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for doc in ["README.md", "playbooks/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for block in text.split("```yaml\n").skip(1) {
            let yaml = block.split("\n```").next().unwrap();
            if !(yaml.contains("\nname: ")
                || yaml.starts_with("name: ")
                || yaml.contains("# a playbook"))
                || !yaml.contains("actions:")
                || !yaml.lines().any(|l| l.starts_with("on:"))
            {
                continue;
            }
            let file = root.join("playbooks").join("doc.yaml");
            if let Err(errors) = parse_all(yaml, &file.display().to_string()) {
                panic!(
                    "{doc}: {}\n{yaml}",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 2, "found {checked} documented playbooks");
}
