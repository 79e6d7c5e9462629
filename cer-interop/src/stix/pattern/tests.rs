use super::*;

fn test(object: &str, path: &[&str], op: Op, operand: Operand) -> Comparison {
    Comparison::Test(Test {
        object: object.into(),
        path: path.iter().map(|k| Step::Key((*k).into())).collect(),
        negated: false,
        op,
        operand,
    })
}

fn string(text: &str) -> Operand {
    Operand::One(Literal::Str(text.into()))
}

fn observation(comparison: Comparison) -> Expr {
    Expr::Observation {
        comparison,
        qualifiers: vec![],
    }
}

fn error(pattern: &str) -> PatternError {
    parse(pattern).expect_err(pattern)
}

#[test]
fn a_simple_comparison() {
    assert_eq!(
        parse("[ipv4-addr:value = '203.0.113.7']").unwrap(),
        observation(test("ipv4-addr", &["value"], Op::Eq, string("203.0.113.7")))
    );
}

#[test]
fn quoted_keys_escapes_and_comments() {
    let parsed =
        parse("/* hash */ [file:hashes.'SHA-256' == 'ab\\'c\\\\d'] // trailing\n").unwrap();
    assert_eq!(
        parsed,
        observation(test(
            "file",
            &["hashes", "SHA-256"],
            Op::Eq,
            string("ab'c\\d")
        ))
    );
}

#[test]
fn observation_operators_have_precedence_and_flatten() {
    let parsed = parse("[a:x = 1] OR [a:x = 2] AND [a:x = 3] OR ([a:x = 4] OR [a:x = 5])").unwrap();
    let Expr::Join { op, items, .. } = parsed else {
        panic!("not a join");
    };
    assert_eq!(op, Join::Or);
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(matches!(&items[1], Expr::Join { op: Join::And, items, .. } if items.len() == 2));
    let parsed = parse("[a:x = 1] FOLLOWEDBY [a:x = 2] OR [a:x = 3]").unwrap();
    assert!(
        matches!(parsed, Expr::Join { op: Join::FollowedBy, ref items, .. } if items.len() == 2)
    );
}

#[test]
fn comparison_operators_have_precedence_and_parentheses() {
    let parsed =
        parse("[a:x = 'p' OR a:y = 'q' AND a:z = 'r' OR (a:w = 's' OR a:v = 't')]").unwrap();
    let Expr::Observation {
        comparison: Comparison::Or(items),
        ..
    } = parsed
    else {
        panic!("not an OR");
    };
    assert_eq!(items.len(), 4);
    assert!(matches!(&items[1], Comparison::And(inner) if inner.len() == 2));
}

#[test]
fn every_operator_and_literal_parses() {
    for (pattern, op) in [
        ("[a:x > 1]", Op::Gt),
        ("[a:x >= 1.5]", Op::Ge),
        ("[a:x < -2]", Op::Lt),
        ("[a:x <= +.5]", Op::Le),
        ("[a:x IN ('p', 2, true)]", Op::In),
        ("[a:x LIKE 'p%']", Op::Like),
        ("[a:x MATCHES '^p$']", Op::Matches),
        ("[a:x ISSUBSET '10.0.0.0/8']", Op::IsSubset),
        ("[a:x ISSUPERSET '10.0.0.0/8']", Op::IsSuperset),
        ("[EXISTS a:x]", Op::Exists),
        ("[a:x = t'2026-11-28T13:00:00Z']", Op::Eq),
        ("[a:x = b'AAEC']", Op::Eq),
        ("[a:x = h'00ff']", Op::Eq),
        ("[a:x = false]", Op::Eq),
    ] {
        let parsed = parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let Expr::Observation {
            comparison: Comparison::Test(test),
            ..
        } = parsed
        else {
            panic!("{pattern}: not one test");
        };
        assert_eq!(test.op, op, "{pattern}");
    }
}

#[test]
fn negation_is_recorded() {
    for pattern in [
        "[a:x != 'p']",
        "[a:x <> 'p']",
        "[a:x NOT = 'p']",
        "[a:x NOT IN ('p')]",
    ] {
        let Expr::Observation {
            comparison: Comparison::Test(test),
            ..
        } = parse(pattern).unwrap()
        else {
            panic!("{pattern}");
        };
        assert!(test.negated, "{pattern}");
    }
    let Expr::Observation {
        comparison: Comparison::Test(test),
        ..
    } = parse("[a:x NOT != 'p']").unwrap()
    else {
        panic!();
    };
    assert!(!test.negated);
}

#[test]
fn qualifiers_attach_to_what_they_follow() {
    let parsed = parse(
        "[a:x = 1] WITHIN 300 SECONDS REPEATS 2 TIMES START t'2026-01-01T00:00:00Z' STOP t'2026-02-01T00:00:00Z'",
    )
    .unwrap();
    let Expr::Observation { qualifiers, .. } = parsed else {
        panic!();
    };
    assert_eq!(
        qualifiers,
        [Qualifier::Within, Qualifier::Repeats, Qualifier::StartStop]
    );
    let parsed = parse("([a:x = 1] OR [a:x = 2]) WITHIN 5 SECONDS").unwrap();
    assert!(
        matches!(parsed, Expr::Join { op: Join::Or, ref qualifiers, .. } if qualifiers == &[Qualifier::Within])
    );
}

#[test]
fn paths_with_indexes_and_references() {
    let Expr::Observation {
        comparison: Comparison::Test(test),
        ..
    } = parse("[network-traffic:protocols[*] = 'tcp' ]").unwrap()
    else {
        panic!();
    };
    assert_eq!(
        test.path,
        [Step::Key("protocols".into()), Step::Index(None)]
    );
    assert_eq!(test.path_text(), "network-traffic:protocols[*]");
    let Expr::Observation {
        comparison: Comparison::Test(test),
        ..
    } = parse("[email-message:to_refs[0].value = 'x@example.com']").unwrap()
    else {
        panic!();
    };
    assert_eq!(test.path_text(), "email-message:to_refs[0].value");
}

#[test]
fn syntax_errors_say_where_and_what() {
    let e = error("[ipv4-addr:value = '1.2.3.4'");
    assert_eq!(e.at, 28);
    assert_eq!(e.reason, "expected ']', found the end of the pattern");
    let e = error("[ipv4-addr:value = '1.2.3.4] ");
    assert_eq!(e.reason, "unterminated string");
    let e = error("ipv4-addr:value = '1.2.3.4'");
    assert_eq!(e.reason, "expected '[' or '(', found 'ipv4-addr'");
    let e = error("[ipv4-addr:value = 'a\\b']");
    assert!(e.reason.contains("may only escape"), "{e}");
    let e = error("[a:x = 1] [a:x = 2]");
    assert_eq!(e.reason, "unexpected '[' after the pattern");
    let e = error("[a:x ~ 1]");
    assert!(e.reason.starts_with("unexpected character '~'"), "{e}");
    let e = error("[a:x = 99999999999999999999]");
    assert!(e.reason.contains("out of range"), "{e}");
    assert!(error("").reason.contains("found the end of the pattern"));
    assert!(error("[]").reason.contains("expected an object type"));
}

#[test]
fn nesting_is_bounded() {
    let deep = format!(
        "{}[a:x = 1]{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert!(
        parse(&deep)
            .unwrap_err()
            .reason
            .contains("nest deeper than 32"),
        "the observation's bracket is one level more"
    );
    let fits = format!(
        "{}[a:x = 1]{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(parse(&fits).is_ok());
    let hostile = "(".repeat(1_000_000);
    assert!(parse(&hostile).unwrap_err().reason.contains("nest deeper"));
    let inside = format!("[{}a:x = 1{}]", "(".repeat(100), ")".repeat(100));
    assert!(parse(&inside).unwrap_err().reason.contains("nest deeper"));
}

#[test]
fn long_patterns_are_refused_before_parsing() {
    let long = format!("[a:x = '{}']", "x".repeat(MAX_PATTERN_BYTES));
    let e = parse(&long).unwrap_err();
    assert_eq!(e.at, 0);
    assert!(e.reason.starts_with("longer than 1048576 bytes"), "{e}");
}

#[test]
fn long_chains_are_flat() {
    let many = vec!["[a:x = 1]"; 20_000].join(" OR ");
    let Expr::Join { items, .. } = parse(&many).unwrap() else {
        panic!();
    };
    assert_eq!(items.len(), 20_000);
    let qualified = format!("[a:x = 1]{}", " WITHIN 1 SECONDS".repeat(20_000));
    let Expr::Observation { qualifiers, .. } = parse(&qualified).unwrap() else {
        panic!();
    };
    assert_eq!(qualifiers.len(), 20_000);
}

#[test]
fn escape_writes_what_parse_reads() {
    for text in ["plain", "it's", "back\\slash", "'\\'", "ünï"] {
        let pattern = format!("[file:name = '{}']", escape(text));
        assert_eq!(
            parse(&pattern).unwrap(),
            observation(test("file", &["name"], Op::Eq, string(text)))
        );
    }
}

#[test]
fn junk_never_panics() {
    for junk in [
        "[",
        "]",
        "(",
        "((",
        "[a",
        "[a:",
        "[a:x",
        "[a:x =",
        "[a:x IN",
        "[a:x IN (",
        "[a:x IN (1,",
        "[a:x = 1] WITHIN",
        "[a:x = 1] WITHIN 5",
        "[a:x = 1] START",
        "[a:x = 1] REPEATS x TIMES",
        "t'",
        "b'",
        "/*",
        "[a:x.]",
        "[a:x[]",
        "[a:x[1]",
        "'",
        "\u{202e}",
        "[a:x = 'é",
        "[EXISTS]",
        "[a:x = .]",
        "[a:x = -]",
        "[a:x = 1.]",
    ] {
        assert!(parse(junk).is_err(), "{junk:?}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    const TOKENS: &[&str] = &[
        "[",
        "]",
        "(",
        ")",
        ":",
        ".",
        ",",
        "*",
        "=",
        "!=",
        "<",
        ">=",
        "'x'",
        "'a\\'b'",
        "t'",
        "b'AA'",
        "h'0f'",
        "1",
        "-2",
        "+.5",
        "true",
        "AND",
        "OR",
        "NOT",
        "FOLLOWEDBY",
        "IN",
        "LIKE",
        "MATCHES",
        "ISSUBSET",
        "EXISTS",
        "WITHIN",
        "SECONDS",
        "REPEATS",
        "TIMES",
        "START",
        "STOP",
        "ipv4-addr",
        "value",
        "file",
        "hashes",
        "'SHA-256'",
        "/*",
        "*/",
        "//",
    ];

    proptest! {
        #[test]
        fn any_text_parses_or_points_inside_it(text in "\\PC{0,200}") {
            if let Err(e) = parse(&text) {
                prop_assert!(e.at <= text.len(), "{e} beyond {}", text.len());
            }
        }

        #[test]
        fn token_soup_parses_or_points_inside_it(
            tokens in proptest::collection::vec(proptest::sample::select(TOKENS), 0..80)
        ) {
            let text = tokens.join(" ");
            if let Err(e) = parse(&text) {
                prop_assert!(e.at <= text.len(), "{e} beyond {}", text.len());
            }
        }
    }
}
