//! A scripted stand-in for cerd's API socket, for unit tests of the
//! client and the commands: it answers each request with the next canned
//! response and records what it was sent. Test-only; the real daemon is
//! exercised by the integration tests in the cerd crate.

use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// One canned answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// Close the connection after answering.
    pub close: bool,
    /// Close the connection without answering: an answer lost after the
    /// request arrived.
    pub hang_up: bool,
    /// Read the request and never answer nor close: a stuck daemon.
    pub silent: bool,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.into(),
            close: false,
            hang_up: false,
            silent: false,
        }
    }

    /// Reads the request and then holds the connection open forever.
    pub fn silence() -> Reply {
        Reply {
            silent: true,
            ..Reply::json(500, "")
        }
    }

    /// Reads the request and hangs up without answering.
    pub fn hang_up() -> Reply {
        Reply {
            hang_up: true,
            ..Reply::json(500, "")
        }
    }
}

/// What the fake saw: per request, the connection number (from 0),
/// `METHOD /path?query` and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub connection: usize,
    pub request: String,
    pub body: String,
}

pub struct Fake {
    pub socket: PathBuf,
    task: Option<JoinHandle<Vec<Seen>>>,
}

impl Fake {
    /// Listens on a fresh socket and answers with `replies` in order.
    pub fn start(replies: Vec<Reply>) -> Fake {
        let socket =
            std::env::temp_dir().join(format!("cerctl-fake-{}.sock", uuid::Uuid::new_v4()));
        let listener = UnixListener::bind(&socket).expect("bind the fake socket");
        let task = tokio::spawn(serve(listener, replies));
        Fake {
            socket,
            task: Some(task),
        }
    }

    /// Waits until every reply was sent and returns what was seen.
    pub async fn finish(mut self) -> Vec<Seen> {
        let task = self.task.take().expect("finish is called once");
        task.await.expect("fake server task")
    }
}

/// Removes the socket file even when a test fails half-way.
impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn serve(listener: UnixListener, replies: Vec<Reply>) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut replies = replies.into_iter().peekable();
    let mut connection = 0;
    while replies.peek().is_some() {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buffer = Vec::new();
        while replies.peek().is_some() {
            // A client that hangs up moves on to the next connection, and
            // the reply waits for it.
            let Some((request, body)) = read_request(&mut stream, &mut buffer).await else {
                break;
            };
            let Some(reply) = replies.next() else { break };
            seen.push(Seen {
                connection,
                request,
                body,
            });
            if reply.hang_up {
                break;
            }
            if reply.silent {
                // Holds `stream` until the test drops the fake.
                std::future::pending::<()>().await;
            }
            let head = format!(
                "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\n{}\r\n",
                reply.status,
                reply.content_type,
                reply.body.len(),
                if reply.close {
                    "connection: close\r\n"
                } else {
                    ""
                }
            );
            stream.write_all(head.as_bytes()).await.expect("write");
            stream
                .write_all(reply.body.as_bytes())
                .await
                .expect("write");
            if reply.close {
                break;
            }
        }
        connection += 1;
    }
    seen
}

async fn read_request(stream: &mut UnixStream, buffer: &mut Vec<u8>) -> Option<(String, String)> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).into_owned();
    buffer.drain(..head_end + length);
    let request_line = head.lines().next()?;
    let request = request_line
        .rsplit_once(' ')
        .map_or(request_line, |(r, _)| r)
        .to_owned();
    Some((request, body))
}
