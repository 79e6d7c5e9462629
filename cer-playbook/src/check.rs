//! The checks: a playbook file parsed into a tree of located values, then
//! read field by field into a [`Playbook`], every problem collected.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use cer_proto::model::{normalize_tag, Classification, IndicatorType, Tlp};
use cer_proto::Fingerprint;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, Spanned};

use crate::*;

mod webhook;

pub(crate) type Node = Spanned<Value>;

/// A YAML value whose children remember where they were written.
#[derive(Debug)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<String>, Node)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
                i128::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
                Ok(Value::Float)
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

impl Value {
    fn describe(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

pub(crate) struct Checker {
    pub(crate) file: String,
    /// The playbook's folder, for relative program paths.
    pub(crate) base: PathBuf,
    pub(crate) errors: Vec<PlaybookError>,
    pub(crate) warnings: Vec<PlaybookWarning>,
}

/// A mapping's entries, after unknown keys were reported.
struct Fields<'n> {
    at: Location,
    entries: Vec<(&'n str, &'n Node)>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "on",
    "match",
    "max_tlp",
    "limits",
    "actions",
];
const LIMIT_KEYS: &[&str] = &["max_runs_per_minute", "max_indicators_per_run"];
/// The largest limit a playbook may set.
const MAX_LIMIT: i128 = 1_000_000;
const MATCH_KEYS: &[&str] = &[
    "severity_at_least",
    "classification",
    "tlp",
    "from",
    "has_indicator",
    "tags",
    "include_warninglisted",
];
const ACTION_KEYS: &[&str] = &["exec", "webhook", "tag", "note", "when", "on"];
const FOR_EACH_KEYS: &[&str] = &["types", "only"];
const EXEC_KEYS: &[&str] = &["argv", "for_each_indicator", "timeout", "env", "cwd"];
const WEBHOOK_KEYS: &[&str] = &["url", "timeout", "headers", "retries", "ca_file", "hmac"];
const HMAC_KEYS: &[&str] = &["secret", "header"];
/// Headers the client sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "x-cer-run-key",
];

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

impl Checker {
    pub(crate) fn playbook(&mut self, root: &Node) -> Option<Playbook> {
        let fields = self.mapping(root, "playbook", TOP_KEYS)?;
        let name = self.required(&fields, "name").and_then(|node| {
            let name = self.string(node, "name")?;
            let valid = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                self.error(
                    node,
                    "name",
                    format!(
                        "'{}' must be 1 to 64 lower-case letters, digits and '-'",
                        shown(&name, 80)
                    ),
                );
                return None;
            }
            Some(name)
        });
        let description = match fields.get("description") {
            Some(node) => self.string(node, "description").unwrap_or_default(),
            None => String::new(),
        };
        let on = self
            .required(&fields, "on")
            .and_then(|node| self.events(node));
        let max_tlp = match fields.get("max_tlp") {
            Some(node) => self.label::<Tlp>(node, "max_tlp"),
            None => Some(Tlp::Green),
        };
        let matcher = match fields.get("match") {
            Some(node) => self.matcher(node, max_tlp),
            None => Some(Match::default()),
        };
        let enabled = match fields.get("enabled") {
            Some(Node {
                value: Value::Bool(enabled),
                ..
            }) => Some(*enabled),
            Some(node) => {
                self.expected(node, "enabled", "true or false");
                None
            }
            None => Some(true),
        };
        let limits = match fields.get("limits") {
            Some(node) => self.limits(node),
            None => Some(Limits::default()),
        };
        let actions = self
            .required(&fields, "actions")
            .and_then(|node| self.actions(node));

        let (name, on, max_tlp, matcher, (actions, action_on), enabled, limits) =
            (name?, on?, max_tlp?, matcher?, actions?, enabled?, limits?);
        let playbook = Playbook {
            name,
            description,
            file: PathBuf::from(&self.file),
            on,
            matcher,
            max_tlp,
            actions,
            action_on,
            limits,
            enabled,
            warnings: Vec::new(),
        };
        self.cross_checks(&playbook, &fields);
        Some(playbook)
    }

    /// Checks between fields: what each event can offer.
    fn cross_checks(&mut self, playbook: &Playbook, fields: &Fields<'_>) {
        let peer_event = playbook.on.iter().find(|e| !e.is_incident()).copied();
        if let (Some(event), true, Some(node)) = (
            peer_event,
            playbook.has_incident_conditions(),
            fields.get("match"),
        ) {
            self.error(
                node,
                "match",
                format!("conditions on the incident (severity, classification, tlp, indicators, tags) do not apply to {event}, which is not about an incident; put it in its own playbook"),
            );
        }
        let Some(actions) = fields.get("actions") else {
            return;
        };
        let Value::Seq(nodes) = &actions.value else {
            return;
        };
        for (i, (action, node)) in playbook.actions.iter().zip(nodes).enumerate() {
            let events: &[EventKind] = match &playbook.action_on[i] {
                Some(events) => {
                    if let Some(event) = events.iter().find(|e| !playbook.on.contains(e)) {
                        self.error(
                            node,
                            &format!("actions[{i}].on"),
                            format!("{event} is not in the playbook's on, so this action would never run for it"),
                        );
                    }
                    events
                }
                None => &playbook.on,
            };
            let Action::Exec(exec) = action else {
                continue;
            };
            if exec.for_each_indicator.is_some() {
                if let Some(event) = events.iter().find(|e| !e.is_incident()) {
                    self.error(
                        node,
                        &format!("actions[{i}].exec.for_each_indicator"),
                        format!("{event} has no indicators to run for"),
                    );
                }
                let doing = events.iter().find(|e| e.is_incident() && !e.is_undo());
                let undoing = events.iter().find(|e| e.is_undo());
                if let (Some(doing), Some(undoing)) = (doing, undoing) {
                    self.error(
                        node,
                        &format!("actions[{i}]"),
                        format!("this action would run for the incident's indicators on {doing} and for the ones taken back on {undoing}; give it its own on: [..] (e.g. one action to block on {doing}, another to unblock on {undoing})"),
                    );
                }
            }
            for (j, arg) in exec.args.iter().enumerate() {
                for placeholder in arg.placeholders() {
                    let field = format!("actions[{i}].exec.argv[{}]", j + 1);
                    let missing = events.iter().find(|e| !placeholder.available_on(**e));
                    if let Some(event) = missing {
                        self.error(
                            node,
                            &field,
                            format!("{placeholder} is not available on {event}"),
                        );
                    } else if matches!(
                        placeholder,
                        Placeholder::IndicatorType | Placeholder::IndicatorValue
                    ) && exec.for_each_indicator.is_none()
                    {
                        self.error(
                            node,
                            &field,
                            format!(
                                "{placeholder} needs for_each_indicator (one run per indicator)"
                            ),
                        );
                    }
                }
            }
        }
    }

    fn events(&mut self, node: &Node) -> Option<Vec<EventKind>> {
        self.event_list(node, "on")
    }

    fn event_list(&mut self, node: &Node, list_field: &str) -> Option<Vec<EventKind>> {
        let items = self.string_list(node, list_field)?;
        if items.is_empty() {
            self.error(node, list_field, "must list at least one event");
            return None;
        }
        let mut events = Vec::new();
        let mut ok = true;
        for (i, (text, item)) in items.into_iter().enumerate() {
            let field = format!("{list_field}[{i}]");
            match EventKind::parse(&text) {
                Some(event) if events.contains(&event) => {
                    self.error(item, &field, format!("{event} is listed twice"));
                    ok = false;
                }
                Some(event) => events.push(event),
                None => {
                    self.error(
                        item,
                        &field,
                        format!(
                            "unknown event '{}'; valid events: {}",
                            shown(&text, 80),
                            EventKind::ALL.map(|e| e.as_str()).join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(events)
    }

    fn matcher(&mut self, node: &Node, max_tlp: Option<Tlp>) -> Option<Match> {
        if matches!(node.value, Value::Null) {
            return Some(Match::default());
        }
        let fields = self.mapping(node, "match", MATCH_KEYS)?;
        let mut ok = true;
        let mut matcher = Match::default();
        if let Some(node) = fields.get("severity_at_least") {
            matcher.severity_at_least = self.label(node, "match.severity_at_least");
            ok &= matcher.severity_at_least.is_some();
        }
        if let Some(node) = fields.get("classification") {
            match self.string_list(node, "match.classification") {
                Some(items) => {
                    for (i, (pattern, item)) in items.into_iter().enumerate() {
                        match Classification::check_pattern(&pattern) {
                            Ok(()) => matcher.classification.push(pattern.trim().to_owned()),
                            Err(e) => {
                                self.error(item, &format!("match.classification[{i}]"), e.reason);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("tlp") {
            match self.label_list::<Tlp>(node, "match.tlp") {
                Some(items) => {
                    for (i, (tlp, item)) in items.into_iter().enumerate() {
                        if let Some(max) = max_tlp.filter(|max| tlp > *max) {
                            self.error(
                                item,
                                &format!("match.tlp[{i}]"),
                                format!("{tlp} is above max_tlp {max}{}, so this would never run; set max_tlp: {tlp} to let actions see {tlp} data", if max == Tlp::Green { " (the default)" } else { "" }),
                            );
                            ok = false;
                        }
                        matcher.tlp.push(tlp);
                    }
                }
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("from") {
            match self.from(node) {
                Some(from) => matcher.from = from,
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("has_indicator") {
            match self.label_list::<IndicatorType>(node, "match.has_indicator") {
                Some(items) => matcher.has_indicator = items.into_iter().map(|(t, _)| t).collect(),
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("include_warninglisted") {
            match node.value {
                Value::Bool(include) => matcher.include_warninglisted = include,
                _ => {
                    self.expected(node, "match.include_warninglisted", "true or false");
                    ok = false;
                }
            }
        }
        if let Some(node) = fields.get("tags") {
            match self.string_list(node, "match.tags") {
                Some(items) => {
                    for (i, (tag, item)) in items.into_iter().enumerate() {
                        match normalize_tag(&tag) {
                            Ok(tag) => matcher.tags.push(tag),
                            Err(e) => {
                                self.error(item, &format!("match.tags[{i}]"), e.reason);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(matcher)
    }

    fn from(&mut self, node: &Node) -> Option<From> {
        if let Value::Str(text) = &node.value {
            return match text.trim() {
                "any" => Some(From::Any),
                "own" => Some(From::Own),
                "peers" => Some(From::Peers),
                other => {
                    self.error(
                        node,
                        "match.from",
                        format!(
                            "'{}' is not any, own, peers or a list of CERT names or fingerprints",
                            shown(other, 80)
                        ),
                    );
                    None
                }
            };
        }
        let items = self.string_list(node, "match.from")?;
        if items.is_empty() {
            self.error(node, "match.from", "the list must name at least one CERT");
            return None;
        }
        let mut certs = Vec::new();
        let mut ok = true;
        for (i, (text, item)) in items.into_iter().enumerate() {
            let text = text.trim();
            if text.is_empty() {
                self.error(item, &format!("match.from[{i}]"), "must not be empty");
                ok = false;
            } else if let Ok(fpr) = Fingerprint::parse(text) {
                certs.push(CertRef::Fingerprint(fpr));
            } else {
                certs.push(CertRef::Name(text.to_owned()));
            }
        }
        ok.then_some(From::List(certs))
    }

    #[allow(clippy::type_complexity)]
    fn actions(&mut self, node: &Node) -> Option<(Vec<Action>, Vec<Option<Vec<EventKind>>>)> {
        let Value::Seq(items) = &node.value else {
            self.expected(node, "actions", "a list of actions");
            return None;
        };
        if items.is_empty() {
            self.error(node, "actions", "must list at least one action");
            return None;
        }
        let mut actions = Vec::new();
        let mut action_on = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.action(item, i) {
                Some((action, on)) => {
                    actions.push(action);
                    action_on.push(on);
                }
                None => ok = false,
            }
        }
        ok.then_some((actions, action_on))
    }

    fn action(&mut self, node: &Node, i: usize) -> Option<(Action, Option<Vec<EventKind>>)> {
        let field = format!("actions[{i}]");
        let fields = self.mapping(node, &field, ACTION_KEYS)?;
        let kinds: Vec<(&str, &Node)> = fields
            .entries
            .iter()
            .filter(|(k, _)| *k != "when" && *k != "on")
            .copied()
            .collect();
        let [(kind, body)] = kinds[..] else {
            let found = kinds.iter().map(|(k, _)| *k).collect::<Vec<_>>();
            self.error(
                node,
                &field,
                if found.is_empty() {
                    "expected one of exec, webhook, tag, note".to_owned()
                } else {
                    format!(
                        "an action has exactly one of exec, webhook, tag, note; found {}",
                        found.join(" and ")
                    )
                },
            );
            return None;
        };
        let when = match fields.get("when") {
            None => When::default(),
            Some(node) if kind == "exec" || kind == "webhook" => {
                self.error(
                    node,
                    &format!("{field}.when"),
                    format!("applies to tag and note actions only, not to {kind}"),
                );
                return None;
            }
            Some(node) => match self.string(node, &format!("{field}.when"))?.trim() {
                "success" | "previous_succeeded" => When::Success,
                "failure" => When::Failure,
                "always" => When::Always,
                other => {
                    self.error(
                        node,
                        &format!("{field}.when"),
                        format!(
                            "'{}' is not one of success, failure, always",
                            shown(other, 40)
                        ),
                    );
                    return None;
                }
            },
        };
        let on = match fields.get("on") {
            None => None,
            Some(node) => Some(self.event_list(node, &format!("{field}.on"))?),
        };
        let field = format!("{field}.{kind}");
        let action = self.action_body(kind, body, &field, when)?;
        Some((action, on))
    }

    fn action_body(&mut self, kind: &str, body: &Node, field: &str, when: When) -> Option<Action> {
        let field = field.to_owned();
        match kind {
            "exec" => self.exec(body, &field).map(Action::Exec),
            "webhook" => self.webhook(body, &field).map(Action::Webhook),
            "tag" => {
                let tag = self.string(body, &field)?;
                match normalize_tag(&tag) {
                    Ok(tag) => Some(Action::Tag(tag, when)),
                    Err(e) => {
                        self.error(body, &field, e.reason);
                        None
                    }
                }
            }
            _ => {
                let note = self.plain_string(body, &field)?;
                if note.trim().is_empty() {
                    self.error(body, &field, "must not be empty");
                    return None;
                }
                if note.chars().count() > NOTE_MAX_CHARS {
                    self.error(
                        body,
                        &field,
                        format!("must be at most {NOTE_MAX_CHARS} characters"),
                    );
                    return None;
                }
                Some(Action::Note(note, when))
            }
        }
    }

    fn exec(&mut self, node: &Node, field: &str) -> Option<Exec> {
        let fields = self.mapping(node, field, EXEC_KEYS)?;
        let mut ok = true;

        let argv_field = format!("{field}.argv");
        let mut program = None;
        let mut args = Vec::new();
        // For the option warning: has a literal `--` been seen, and was
        // the previous element a fixed option (`--address`, `-d`)?
        let mut after_double_dash = false;
        let mut after_option = false;
        match self.required_in(&fields, "argv", field) {
            Some(argv) => match self.string_list(argv, &argv_field) {
                Some(items) if items.is_empty() => {
                    self.error(argv, &argv_field, "must name at least the program");
                    ok = false;
                }
                Some(items) => {
                    for (i, (text, item)) in items.into_iter().enumerate() {
                        let item_field = format!("{argv_field}[{i}]");
                        if text.contains('\0') {
                            self.error(item, &item_field, "must not contain NUL");
                            ok = false;
                            continue;
                        }
                        if i == 0 {
                            program = self.program(&text, item, &item_field);
                            ok &= program.is_some();
                            continue;
                        }
                        match Template::parse(&text) {
                            Ok(template) => {
                                if let Some(Part::Placeholder(placeholder)) =
                                    template.parts().first()
                                {
                                    if placeholder.may_read_as_option()
                                        && !after_double_dash
                                        && !after_option
                                    {
                                        self.warning(
                                            item,
                                            &item_field,
                                            format!("{placeholder} begins this argument and neither \"--\" nor a fixed option comes before it; a value beginning with '-' would be read as an option (put \"--\" before it if the program accepts that)"),
                                        );
                                    }
                                }
                                let fixed = template.placeholders().next().is_none();
                                after_double_dash |= fixed && text == "--";
                                after_option = fixed && text.len() > 1 && text.starts_with('-');
                                args.push(template);
                            }
                            Err(reason) => {
                                self.error(item, &item_field, reason);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            },
            None => ok = false,
        }

        let mut for_each_indicator = None;
        if let Some(node) = fields.get("for_each_indicator") {
            for_each_indicator = self.for_each(node, &format!("{field}.for_each_indicator"));
            ok &= for_each_indicator.is_some();
        }

        let timeout = self.timeout(
            fields.get("timeout"),
            &format!("{field}.timeout"),
            DEFAULT_EXEC_TIMEOUT,
            MAX_EXEC_TIMEOUT,
        );
        ok &= timeout.is_some();

        let mut env = Vec::new();
        if let Some(node) = fields.get("env") {
            match self.string_map(node, &format!("{field}.env")) {
                Some(entries) => {
                    for (key, value, key_at, value_node) in entries {
                        let entry_field = format!("{field}.env.{}", shown(&key, 40));
                        let valid_name = !key.is_empty()
                            && !key.starts_with(|c: char| c.is_ascii_digit())
                            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if !valid_name {
                            self.error_at(key_at, &entry_field, "a variable name is letters, digits and '_', not starting with a digit");
                            ok = false;
                        } else if CER_VARIABLES.contains(&key.as_str()) {
                            self.error_at(
                                key_at,
                                &entry_field,
                                "this variable is set by cerd and cannot be overridden",
                            );
                            ok = false;
                        } else if value.contains('\0') {
                            self.error(value_node, &entry_field, "must not contain NUL");
                            ok = false;
                        } else {
                            env.push((key, value));
                        }
                    }
                }
                None => ok = false,
            }
        }

        let mut cwd = None;
        if let Some(node) = fields.get("cwd") {
            let cwd_field = format!("{field}.cwd");
            match self.plain_string(node, &cwd_field) {
                Some(text) if text.is_empty() || text.contains('\0') => {
                    self.error(node, &cwd_field, "must be a folder path");
                    ok = false;
                }
                Some(text) => cwd = Some(self.base.join(text)),
                None => ok = false,
            }
        }

        if !ok {
            return None;
        }
        Some(Exec {
            program: program?,
            args,
            for_each_indicator,
            timeout: timeout?,
            env,
            cwd,
        })
    }

    fn program(&mut self, text: &str, node: &Node, field: &str) -> Option<PathBuf> {
        if text.trim().is_empty() {
            self.error(node, field, "the program must not be empty");
            return None;
        }
        if text.contains('{') || text.contains('}') {
            self.error(
                node,
                field,
                "the program is fixed: placeholders and braces are not allowed in argv[0]",
            );
            return None;
        }
        let path = Path::new(text);
        Some(if path.is_absolute() || !text.contains('/') {
            path.to_path_buf()
        } else {
            self.base.join(path)
        })
    }

    /// `[ipv4, ipv6]`, or `{types: [ipv4, ipv6], only: added | all}`.
    fn for_each(&mut self, node: &Node, field: &str) -> Option<ForEach> {
        let (types_node, only) = match &node.value {
            Value::Map(_) => {
                let fields = self.mapping(node, field, FOR_EACH_KEYS)?;
                let only = match fields.get("only") {
                    None => Some(Only::default()),
                    Some(only) => match self.string(only, &format!("{field}.only"))?.trim() {
                        "added" => Some(Only::Added),
                        "all" => Some(Only::All),
                        other => {
                            self.error(
                                only,
                                &format!("{field}.only"),
                                format!("'{}' is not added or all", shown(other, 40)),
                            );
                            None
                        }
                    },
                };
                let types = self.required_in(&fields, "types", field);
                (types, only)
            }
            _ => (Some(node), Some(Only::default())),
        };
        let types_field = match &node.value {
            Value::Map(_) => format!("{field}.types"),
            _ => field.to_owned(),
        };
        let types = match types_node {
            Some(types_node) => match self.label_list::<IndicatorType>(types_node, &types_field) {
                Some(items) if items.is_empty() => {
                    self.error(
                        types_node,
                        &types_field,
                        "must list at least one indicator type",
                    );
                    None
                }
                Some(items) => Some(items.into_iter().map(|(t, _)| t).collect()),
                None => None,
            },
            None => None,
        };
        Some(ForEach {
            types: types?,
            only: only?,
        })
    }

    fn limits(&mut self, node: &Node) -> Option<Limits> {
        let fields = self.mapping(node, "limits", LIMIT_KEYS)?;
        let mut limits = Limits::default();
        let mut ok = true;
        for (key, slot) in [
            ("max_runs_per_minute", &mut limits.max_runs_per_minute),
            ("max_indicators_per_run", &mut limits.max_indicators_per_run),
        ] {
            let Some(value) = fields.get(key) else {
                continue;
            };
            match value.value {
                Value::Int(n) if (1..=MAX_LIMIT).contains(&n) => *slot = u32::try_from(n).ok(),
                _ => {
                    self.error(
                        value,
                        &format!("limits.{key}"),
                        format!("must be a whole number from 1 to {MAX_LIMIT}"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(limits)
    }

    fn timeout(
        &mut self,
        node: Option<&Node>,
        field: &str,
        default: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(node) = node else {
            return Some(default);
        };
        let Value::Str(text) = &node.value else {
            self.expected(node, field, "a duration such as 30s or 2m");
            return None;
        };
        let limit = humantime::format_duration(max);
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => {
                self.error(node, field, "must be longer than zero");
                None
            }
            Ok(d) if d > max => {
                self.error(node, field, format!("must be at most {limit}"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    node,
                    field,
                    format!(
                        "'{}' is not a duration such as 30s or 2m: {e}",
                        shown(text, 40)
                    ),
                );
                None
            }
        }
    }

    // -- generic readers --------------------------------------------------

    fn mapping<'n>(&mut self, node: &'n Node, field: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, field, "a mapping");
            return None;
        };
        let mut fields = Fields {
            at: node.referenced,
            entries: Vec::new(),
        };
        for (key, value) in entries {
            if allowed.contains(&key.value.as_str()) {
                fields.entries.push((key.value.as_str(), value));
            } else {
                let name = if field == "playbook" {
                    shown(&key.value, 40)
                } else {
                    format!("{field}.{}", shown(&key.value, 40))
                };
                self.error_at(
                    key.referenced,
                    &name,
                    format!("unknown key; valid keys here: {}", allowed.join(", ")),
                );
            }
        }
        Some(fields)
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, key: &str) -> Option<&'n Node> {
        self.required_in(fields, key, "")
    }

    fn required_in<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        parent: &str,
    ) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            let field = if parent.is_empty() {
                key.to_owned()
            } else {
                format!("{parent}.{key}")
            };
            self.error_at(fields.at, &field, "is required");
        }
        node
    }

    /// A string, or an integer written without quotes (`argv: [x, 10]`).
    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            _ => {
                self.expected(node, field, "a string");
                None
            }
        }
    }

    /// A string outside argv: placeholders are not expanded there, so one
    /// written there is a mistake worth reporting.
    fn plain_string(&mut self, node: &Node, field: &str) -> Option<String> {
        let text = self.string(node, field)?;
        if let Some(p) = Placeholder::ALL
            .iter()
            .find(|p| text.contains(&p.to_string()))
        {
            self.error(
                node,
                field,
                format!("{p} is not expanded here; placeholders are only substituted in exec argv"),
            );
            return None;
        }
        Some(text)
    }

    /// A list of strings; a single string counts as a list of one.
    fn string_list<'n>(&mut self, node: &'n Node, field: &str) -> Option<Vec<(String, &'n Node)>> {
        match &node.value {
            Value::Str(s) => Some(vec![(s.clone(), node)]),
            Value::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.string(item, &format!("{field}[{i}]")) {
                        Some(s) => out.push((s, item)),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.expected(node, field, "a list of strings");
                None
            }
        }
    }

    /// A mapping of string to string, as (key, value, key location, value node).
    #[allow(clippy::type_complexity)]
    fn string_map<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
    ) -> Option<Vec<(String, String, Location, &'n Node)>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, field, "a mapping of names to strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in entries {
            match self.plain_string(value, &format!("{field}.{}", shown(&key.value, 40))) {
                Some(text) => out.push((key.value.clone(), text, key.referenced, value)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn label<T>(&mut self, node: &Node, field: &str) -> Option<T>
    where
        T: std::str::FromStr<Err = cer_proto::FieldError>,
    {
        let text = self.string(node, field)?;
        text.parse::<T>()
            .map_err(|e| self.error(node, field, e.reason))
            .ok()
    }

    fn label_list<'n, T>(&mut self, node: &'n Node, field: &str) -> Option<Vec<(T, &'n Node)>>
    where
        T: std::str::FromStr<Err = cer_proto::FieldError> + PartialEq,
    {
        let items = self.string_list(node, field)?;
        let mut out: Vec<(T, &Node)> = Vec::new();
        let mut ok = true;
        for (i, (_, item)) in items.into_iter().enumerate() {
            let item_field = format!("{field}[{i}]");
            match self.label::<T>(item, &item_field) {
                Some(value) if out.iter().any(|(v, _)| *v == value) => {
                    self.error(item, &item_field, "is listed twice");
                    ok = false;
                }
                Some(value) => out.push((value, item)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn expected(&mut self, node: &Node, field: &str, what: &str) {
        let got = node.value.describe();
        self.error(node, field, format!("expected {what}, got {got}"));
    }

    fn error(&mut self, node: &Node, field: &str, reason: impl Into<String>) {
        self.error_at(node.referenced, field, reason);
    }

    fn warning(&mut self, node: &Node, field: &str, reason: impl Into<String>) {
        let (line, column) = line_column(node.referenced);
        self.warnings.push(PlaybookWarning {
            file: self.file.clone(),
            line,
            column,
            field: escaped(field),
            reason: escaped(&reason.into()),
        });
    }

    fn error_at(&mut self, at: Location, field: &str, reason: impl Into<String>) {
        let (line, column) = line_column(at);
        self.errors.push(PlaybookError::Invalid {
            file: self.file.clone(),
            line,
            column,
            field: escaped(field),
            // Reasons quote values (some through cer-proto's messages);
            // none may put a control character in a log or terminal.
            reason: escaped(&reason.into()),
        });
    }
}

/// Text from a playbook file (and values quoted from cer-proto's
/// messages) made safe for logs and terminals.
pub(crate) fn escaped(text: &str) -> String {
    cer_proto::text::escape(text).into_owned()
}

pub(crate) fn line_column(at: Location) -> (u32, u32) {
    let narrow = |n: u64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    (narrow(at.line()), narrow(at.column()))
}

pub(crate) fn first(mut errors: Vec<PlaybookError>) -> PlaybookError {
    // parse_all never returns an empty list.
    errors.swap_remove(0)
}

pub(crate) fn position(error: &PlaybookError) -> (u32, u32) {
    error.position().unwrap_or((0, 0))
}

pub(crate) fn read_limited(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} KiB; not a playbook",
            MAX_FILE_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// Where `name:` is in a file already known to be valid, for the
/// duplicate-name error.
pub(crate) fn name_position(path: &Path) -> (u32, u32) {
    let text = read_limited(path).unwrap_or_default();
    text.lines()
        .position(|line| line.starts_with("name:"))
        .map_or((1, 1), |i| (u32::try_from(i + 1).unwrap_or(u32::MAX), 1))
}

/// Text echoed in an error: cut short and with control characters
/// escaped, since it may come from anywhere and lands in logs.
pub(crate) fn shown(text: &str, max_chars: usize) -> String {
    let cut: String = text.chars().take(max_chars).collect();
    let mut out = escaped(&cut);
    if text.chars().nth(max_chars).is_some() {
        out.push_str("...");
    }
    out
}
