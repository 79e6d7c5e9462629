//! The pattern grammar's tokens: literals (strings with their two
//! escapes, numbers, `t'…'`, `b'…'`, `h'…'`), words, punctuation and
//! comparison operators, each with its byte offset. Comments are skipped.

use std::fmt;

use super::{Literal, Op, PatternError};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    LBrack,
    RBrack,
    LParen,
    RParen,
    Colon,
    Dot,
    Comma,
    Star,
    /// `=`, `!=`, `<`, `<=`, `>`, `>=`; `!=` is Eq negated.
    Cmp(Op, bool),
    Word(String),
    Lit(Literal),
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::LBrack => f.write_str("'['"),
            Kind::RBrack => f.write_str("']'"),
            Kind::LParen => f.write_str("'('"),
            Kind::RParen => f.write_str("')'"),
            Kind::Colon => f.write_str("':'"),
            Kind::Dot => f.write_str("'.'"),
            Kind::Comma => f.write_str("','"),
            Kind::Star => f.write_str("'*'"),
            Kind::Cmp(Op::Eq, true) => f.write_str("'!='"),
            Kind::Cmp(op, _) => write!(f, "'{}'", op.as_str()),
            Kind::Word(word) => write!(f, "'{}'", crate::stix::clip(word, 40)),
            Kind::Lit(literal) => {
                write!(f, "literal {}", crate::stix::clip(&literal.to_string(), 40))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: Kind,
    pub at: usize,
}

pub(super) fn lex(text: &str) -> Result<Vec<Token>, PatternError> {
    let bytes = text.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    let fail = |at: usize, reason: String| Err(PatternError { at, reason });
    while i < bytes.len() {
        let c = bytes[i];
        let at = i;
        let next = bytes.get(i + 1).copied();
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && next == Some(b'*') {
            match text[i + 2..].find("*/") {
                Some(end) => i += end + 4,
                None => return fail(at, "unterminated comment".into()),
            }
            continue;
        }
        if c == b'/' && next == Some(b'/') {
            i = text[i..].find('\n').map_or(bytes.len(), |end| i + end);
            continue;
        }
        let single = match c {
            b'[' => Some(Kind::LBrack),
            b']' => Some(Kind::RBrack),
            b'(' => Some(Kind::LParen),
            b')' => Some(Kind::RParen),
            b':' => Some(Kind::Colon),
            b',' => Some(Kind::Comma),
            b'*' => Some(Kind::Star),
            _ => None,
        };
        if let Some(kind) = single {
            tokens.push(Token { kind, at });
            i += 1;
            continue;
        }
        let (kind, len) = match (c, next) {
            (b'=', Some(b'=')) => (Kind::Cmp(Op::Eq, false), 2),
            (b'=', _) => (Kind::Cmp(Op::Eq, false), 1),
            (b'!', Some(b'=')) | (b'<', Some(b'>')) => (Kind::Cmp(Op::Eq, true), 2),
            (b'<', Some(b'=')) => (Kind::Cmp(Op::Le, false), 2),
            (b'<', _) => (Kind::Cmp(Op::Lt, false), 1),
            (b'>', Some(b'=')) => (Kind::Cmp(Op::Ge, false), 2),
            (b'>', _) => (Kind::Cmp(Op::Gt, false), 1),
            (b'\'', _) => {
                let (value, len) = string_at(text, i)?;
                (Kind::Lit(Literal::Str(value)), len)
            }
            (b't' | b'b' | b'h', Some(b'\'')) => {
                let (value, len) = string_at(text, i + 1)?;
                let literal = match c {
                    b't' => Literal::Time(value),
                    b'b' => Literal::Binary(value),
                    _ => Literal::Hex(value),
                };
                (Kind::Lit(literal), len + 1)
            }
            (b'.', Some(d)) if d.is_ascii_digit() && !after_path_part(&tokens) => {
                number_at(text, i)?
            }
            (b'.', _) => (Kind::Dot, 1),
            (b'+' | b'-', Some(d)) if d.is_ascii_digit() || d == b'.' => number_at(text, i)?,
            (d, _) if d.is_ascii_digit() => number_at(text, i)?,
            (w, _) if w.is_ascii_alphabetic() || w == b'_' => {
                let len = bytes[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
                    .count();
                let word = &text[i..i + len];
                let kind = match word {
                    "true" => Kind::Lit(Literal::Bool(true)),
                    "false" => Kind::Lit(Literal::Bool(false)),
                    _ => Kind::Word(word.to_owned()),
                };
                (kind, len)
            }
            _ => {
                let shown = text[i..].chars().next().unwrap_or('?');
                return fail(at, format!("unexpected character {shown:?}"));
            }
        };
        tokens.push(Token { kind, at });
        i += len;
    }
    Ok(tokens)
}

/// Whether a '.' here continues an object path (`hashes.MD5`) rather than
/// starting a number (`.5`).
fn after_path_part(tokens: &[Token]) -> bool {
    matches!(
        tokens.last().map(|t| &t.kind),
        Some(Kind::Word(_) | Kind::Lit(Literal::Str(_)) | Kind::RBrack)
    )
}

/// The string literal whose opening quote is at `start`: its value and
/// its length in bytes, quotes included.
fn string_at(text: &str, start: usize) -> Result<(String, usize), PatternError> {
    let mut value = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\'' => return Ok((value, offset + 2)),
            '\\' => match chars.next() {
                Some((_, escaped @ ('\'' | '\\'))) => value.push(escaped),
                _ => {
                    return Err(PatternError {
                        at: start + 1 + offset,
                        reason: "a backslash in a string may only escape ' or \\".into(),
                    })
                }
            },
            other => value.push(other),
        }
    }
    Err(PatternError {
        at: start,
        reason: "unterminated string".into(),
    })
}

fn number_at(text: &str, start: usize) -> Result<(Kind, usize), PatternError> {
    let bytes = text.as_bytes();
    let mut end = start;
    if matches!(bytes.get(end), Some(b'+' | b'-')) {
        end += 1;
    }
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    end += digits(end);
    let float = bytes.get(end) == Some(&b'.');
    if float {
        let fraction = digits(end + 1);
        if fraction == 0 {
            return Err(PatternError {
                at: start,
                reason: "a number's '.' must be followed by digits".into(),
            });
        }
        end += 1 + fraction;
        return Ok((
            Kind::Lit(Literal::Float(text[start..end].to_owned())),
            end - start,
        ));
    }
    let written = &text[start..end];
    let value = written
        .trim_start_matches('+')
        .parse::<i64>()
        .map_err(|_| PatternError {
            at: start,
            reason: format!("integer {} is out of range", crate::stix::clip(written, 40)),
        })?;
    Ok((Kind::Lit(Literal::Int(value)), end - start))
}
