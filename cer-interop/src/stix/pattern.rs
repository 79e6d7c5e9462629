//! STIX patterns (STIX 2.1 §9) parsed into a small tree. The parser takes
//! the whole grammar, so what cerd cannot represent (a `MATCHES`, a
//! `WITHIN` qualifier, `FOLLOWEDBY`) is refused by name by the mapping in
//! `observable`, not as a syntax error.
//!
//! Bounded on any input: a pattern longer than [`MAX_PATTERN_BYTES`] is
//! refused before any work, and brackets and parentheses nest at most
//! [`MAX_DEPTH`] deep, so recursion (and dropping the tree) stays shallow.
//! A chain of qualifiers or operators is a list, never a nested tree.
//!
//! This module only parses; it never evaluates a pattern.

use std::fmt;

use lex::{lex, Kind, Token};

mod lex;

/// Longest pattern read, in bytes: far above any real indicator (ten
/// thousand addresses joined by OR take about 400 KiB).
pub const MAX_PATTERN_BYTES: usize = 1024 * 1024;

/// Deepest nesting of `[`…`]` and `(`…`)`.
pub const MAX_DEPTH: usize = 32;

/// An observation expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `[ comparison ]`, with the qualifiers written after it.
    Observation {
        comparison: Comparison,
        qualifiers: Vec<Qualifier>,
    },
    /// Observation expressions joined by one operator; a parenthesized
    /// group keeps the qualifiers written after it.
    Join {
        op: Join,
        items: Vec<Expr>,
        qualifiers: Vec<Qualifier>,
    },
}

/// How observation expressions are joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    And,
    Or,
    FollowedBy,
}

/// A qualifier on an observation expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Within,
    Repeats,
    StartStop,
}

/// A comparison expression: the inside of `[`…`]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Comparison {
    And(Vec<Comparison>),
    Or(Vec<Comparison>),
    Test(Test),
}

/// One comparison: `object:path op operand`.
#[derive(Debug, Clone, PartialEq)]
pub struct Test {
    /// The object type, e.g. `ipv4-addr`.
    pub object: String,
    /// The property path, e.g. `hashes`, `SHA-256`.
    pub path: Vec<Step>,
    /// Written with `NOT`, or as `!=`.
    pub negated: bool,
    pub op: Op,
    pub operand: Operand,
}

/// One step of an object path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    /// `[n]`, or `[*]` as None.
    Index(Option<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Like,
    Matches,
    IsSubset,
    IsSuperset,
    Exists,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `EXISTS` takes none.
    None,
    One(Literal),
    Set(Vec<Literal>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Int(i64),
    /// Kept as written: nothing cerd maps compares floats.
    Float(String),
    Bool(bool),
    /// `t'…'`, as written between the quotes.
    Time(String),
    /// `b'…'` (base64), as written.
    Binary(String),
    /// `h'…'`, as written.
    Hex(String),
}

/// Why a pattern could not be parsed, and where (a byte offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub at: usize,
    pub reason: String,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.at, self.reason)
    }
}

impl Op {
    pub fn as_str(&self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In => "IN",
            Op::Like => "LIKE",
            Op::Matches => "MATCHES",
            Op::IsSubset => "ISSUBSET",
            Op::IsSuperset => "ISSUPERSET",
            Op::Exists => "EXISTS",
        }
    }
}

impl Qualifier {
    pub fn as_str(&self) -> &'static str {
        match self {
            Qualifier::Within => "WITHIN",
            Qualifier::Repeats => "REPEATS",
            Qualifier::StartStop => "START/STOP",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Key(key) if is_plain_key(key) => f.write_str(key),
            Step::Key(key) => write!(f, "'{}'", escape(key)),
            Step::Index(Some(n)) => write!(f, "[{n}]"),
            Step::Index(None) => f.write_str("[*]"),
        }
    }
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(text) => write!(f, "'{}'", escape(text)),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(text) => f.write_str(text),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Time(text) => write!(f, "t'{text}'"),
            Literal::Binary(text) => write!(f, "b'{text}'"),
            Literal::Hex(text) => write!(f, "h'{text}'"),
        }
    }
}

impl Test {
    /// The object path as written in a pattern: `file:hashes.'SHA-256'`.
    pub fn path_text(&self) -> String {
        let mut text = format!("{}:", self.object);
        for (i, step) in self.path.iter().enumerate() {
            if i > 0 && matches!(step, Step::Key(_)) {
                text.push('.');
            }
            text.push_str(&step.to_string());
        }
        text
    }
}

/// Parses a whole pattern.
pub fn parse(text: &str) -> Result<Expr, PatternError> {
    if text.len() > MAX_PATTERN_BYTES {
        return Err(PatternError {
            at: 0,
            reason: format!(
                "longer than {MAX_PATTERN_BYTES} bytes ({} bytes)",
                text.len()
            ),
        });
    }
    let tokens = lex(text)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        end: text.len(),
    };
    let expr = parser.expressions()?;
    if let Some(token) = parser.tokens.get(parser.pos) {
        return Err(PatternError {
            at: token.at,
            reason: format!("unexpected {} after the pattern", token.kind),
        });
    }
    Ok(expr)
}

/// A string as a pattern's string literal writes it (without the quotes):
/// `\` and `'` escaped with a backslash, the only escapes the grammar has.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A key that may be written without quotes in an object path.
fn is_plain_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    /// The pattern's length: where an error at the end points.
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Kind> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.at)
    }

    fn error<T>(&self, expected: &str) -> Result<T, PatternError> {
        let found = match self.peek() {
            Some(kind) => kind.to_string(),
            None => "the end of the pattern".into(),
        };
        Err(PatternError {
            at: self.at(),
            reason: format!("expected {expected}, found {found}"),
        })
    }

    fn eat(&mut self, kind: &Kind) -> bool {
        if self.peek() == Some(kind) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Kind::Word(w)) if w == word => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, kind: &Kind) -> Result<(), PatternError> {
        if self.eat(kind) {
            Ok(())
        } else {
            self.error(&kind.to_string())
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), PatternError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            self.error(word)
        }
    }

    fn enter(&mut self) -> Result<(), PatternError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(PatternError {
                at: self.at(),
                reason: format!("brackets and parentheses nest deeper than {MAX_DEPTH}"),
            });
        }
        Ok(())
    }

    fn expressions(&mut self) -> Result<Expr, PatternError> {
        let mut items = vec![self.observation_or()?];
        while self.eat_word("FOLLOWEDBY") {
            items.push(self.observation_or()?);
        }
        Ok(join(Join::FollowedBy, items))
    }

    fn observation_or(&mut self) -> Result<Expr, PatternError> {
        let mut items = vec![self.observation_and()?];
        while self.eat_word("OR") {
            items.push(self.observation_and()?);
        }
        Ok(join(Join::Or, items))
    }

    fn observation_and(&mut self) -> Result<Expr, PatternError> {
        let mut items = vec![self.observation()?];
        while self.eat_word("AND") {
            items.push(self.observation()?);
        }
        Ok(join(Join::And, items))
    }

    fn observation(&mut self) -> Result<Expr, PatternError> {
        if self.eat(&Kind::LBrack) {
            self.enter()?;
            let comparison = self.comparison()?;
            self.expect(&Kind::RBrack)?;
            self.depth -= 1;
            let qualifiers = self.qualifiers()?;
            return Ok(Expr::Observation {
                comparison,
                qualifiers,
            });
        }
        if self.eat(&Kind::LParen) {
            self.enter()?;
            let mut inner = self.expressions()?;
            self.expect(&Kind::RParen)?;
            self.depth -= 1;
            let mut more = self.qualifiers()?;
            if more.is_empty() {
                return Ok(inner);
            }
            // `([a]) WITHIN 5 SECONDS` qualifies [a] itself; a group that
            // already carries qualifiers gets a level of its own.
            return Ok(match &mut inner {
                Expr::Observation { qualifiers, .. } => {
                    qualifiers.append(&mut more);
                    inner
                }
                Expr::Join { qualifiers, .. } if qualifiers.is_empty() => {
                    *qualifiers = more;
                    inner
                }
                Expr::Join { .. } => Expr::Join {
                    op: Join::Or,
                    items: vec![inner],
                    qualifiers: more,
                },
            });
        }
        self.error("'[' or '('")
    }

    fn qualifiers(&mut self) -> Result<Vec<Qualifier>, PatternError> {
        let mut qualifiers = Vec::new();
        loop {
            if self.eat_word("WITHIN") {
                match self.peek() {
                    Some(Kind::Lit(Literal::Int(_) | Literal::Float(_))) => self.pos += 1,
                    _ => return self.error("a number of seconds"),
                }
                self.expect_word("SECONDS")?;
                qualifiers.push(Qualifier::Within);
            } else if self.eat_word("REPEATS") {
                match self.peek() {
                    Some(Kind::Lit(Literal::Int(_))) => self.pos += 1,
                    _ => return self.error("a number of times"),
                }
                self.expect_word("TIMES")?;
                qualifiers.push(Qualifier::Repeats);
            } else if self.eat_word("START") {
                self.timestamp()?;
                self.expect_word("STOP")?;
                self.timestamp()?;
                qualifiers.push(Qualifier::StartStop);
            } else {
                return Ok(qualifiers);
            }
        }
    }

    fn timestamp(&mut self) -> Result<(), PatternError> {
        match self.peek() {
            Some(Kind::Lit(Literal::Time(_) | Literal::Str(_))) => {
                self.pos += 1;
                Ok(())
            }
            _ => self.error("a timestamp"),
        }
    }

    fn comparison(&mut self) -> Result<Comparison, PatternError> {
        let mut items = vec![self.comparison_and()?];
        while self.eat_word("OR") {
            items.push(self.comparison_and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Comparison::Or(flatten(items, |c| matches!(c, Comparison::Or(_))))
        })
    }

    fn comparison_and(&mut self) -> Result<Comparison, PatternError> {
        let mut items = vec![self.test()?];
        while self.eat_word("AND") {
            items.push(self.test()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Comparison::And(flatten(items, |c| matches!(c, Comparison::And(_))))
        })
    }

    fn test(&mut self) -> Result<Comparison, PatternError> {
        if self.eat(&Kind::LParen) {
            self.enter()?;
            let inner = self.comparison()?;
            self.expect(&Kind::RParen)?;
            self.depth -= 1;
            return Ok(inner);
        }
        if self.eat_word("EXISTS") {
            let (object, path) = self.object_path()?;
            return Ok(Comparison::Test(Test {
                object,
                path,
                negated: false,
                op: Op::Exists,
                operand: Operand::None,
            }));
        }
        let (object, path) = self.object_path()?;
        let mut negated = self.eat_word("NOT");
        let (op, operand) = match self.peek().cloned() {
            Some(Kind::Cmp(op, not)) => {
                self.pos += 1;
                negated ^= not;
                (op, Operand::One(self.literal()?))
            }
            Some(Kind::Word(word)) => {
                let op = match word.as_str() {
                    "IN" => Op::In,
                    "LIKE" => Op::Like,
                    "MATCHES" => Op::Matches,
                    "ISSUBSET" => Op::IsSubset,
                    "ISSUPERSET" => Op::IsSuperset,
                    _ => return self.error("a comparison operator"),
                };
                self.pos += 1;
                if op == Op::In {
                    (op, Operand::Set(self.set()?))
                } else {
                    match self.peek().cloned() {
                        Some(Kind::Lit(literal @ Literal::Str(_))) => {
                            self.pos += 1;
                            (op, Operand::One(literal))
                        }
                        _ => return self.error("a string"),
                    }
                }
            }
            _ => return self.error("a comparison operator"),
        };
        Ok(Comparison::Test(Test {
            object,
            path,
            negated,
            op,
            operand,
        }))
    }

    fn object_path(&mut self) -> Result<(String, Vec<Step>), PatternError> {
        let object = match self.peek() {
            Some(Kind::Word(word)) => word.clone(),
            _ => return self.error("an object type such as ipv4-addr"),
        };
        self.pos += 1;
        self.expect(&Kind::Colon)?;
        let mut path = vec![self.key()?];
        loop {
            if self.eat(&Kind::Dot) {
                path.push(self.key()?);
            } else if self.eat(&Kind::LBrack) {
                let index = match self.peek() {
                    Some(Kind::Lit(Literal::Int(n))) => Some(*n),
                    Some(Kind::Star) => None,
                    _ => return self.error("a list index or '*'"),
                };
                self.pos += 1;
                self.expect(&Kind::RBrack)?;
                path.push(Step::Index(index));
            } else {
                return Ok((object, path));
            }
        }
    }

    fn key(&mut self) -> Result<Step, PatternError> {
        let key = match self.peek() {
            Some(Kind::Word(word)) => word.clone(),
            Some(Kind::Lit(Literal::Str(text))) => text.clone(),
            _ => return self.error("a property name"),
        };
        self.pos += 1;
        Ok(Step::Key(key))
    }

    fn literal(&mut self) -> Result<Literal, PatternError> {
        match self.peek() {
            Some(Kind::Lit(literal)) => {
                let literal = literal.clone();
                self.pos += 1;
                Ok(literal)
            }
            _ => self.error("a value"),
        }
    }

    fn set(&mut self) -> Result<Vec<Literal>, PatternError> {
        self.expect(&Kind::LParen)?;
        let mut items = Vec::new();
        if self.eat(&Kind::RParen) {
            return Ok(items);
        }
        loop {
            items.push(self.literal()?);
            if self.eat(&Kind::RParen) {
                return Ok(items);
            }
            self.expect(&Kind::Comma)?;
        }
    }
}

/// One expression, or several joined by `op` (nested joins of the same
/// operator without qualifiers flattened).
fn join(op: Join, items: Vec<Expr>) -> Expr {
    let mut items = flatten(
        items,
        |item| matches!(item, Expr::Join { op: inner, qualifiers, .. } if *inner == op && qualifiers.is_empty()),
    );
    if items.len() == 1 {
        return items.remove(0);
    }
    Expr::Join {
        op,
        items,
        qualifiers: vec![],
    }
}

/// Lifts the items of children that `same` says join like their parent.
fn flatten<T: Flat>(items: Vec<T>, same: impl Fn(&T) -> bool) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if same(&item) {
            out.extend(item.into_items());
        } else {
            out.push(item);
        }
    }
    out
}

trait Flat: Sized {
    fn into_items(self) -> Vec<Self>;
}

impl Flat for Expr {
    fn into_items(self) -> Vec<Expr> {
        match self {
            Expr::Join { items, .. } => items,
            other => vec![other],
        }
    }
}

impl Flat for Comparison {
    fn into_items(self) -> Vec<Comparison> {
        match self {
            Comparison::And(items) | Comparison::Or(items) => items,
            other => vec![other],
        }
    }
}

#[cfg(test)]
mod tests;
