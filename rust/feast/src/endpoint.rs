//! Where the reader's Redis is and how a connection to it starts: the address, database and
//! credentials of a `redis://` URL (parsed by the redis crate, so URLs mean what they meant
//! before), the socket (TCP with `TCP_NODELAY`, or a unix socket) and the handshake (`AUTH`
//! when a password is given, `SELECT` when the database is not 0), each reply checked. Called
//! by the `connection` module when it (re)connects.

use std::fmt;
use std::path::PathBuf;

use bytes::BytesMut;
use redis::ConnectionAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::resp::{Parsed, Reply, encode_command, parse_reply};
use crate::stats::FailureKind;

/// The read half of a connection's socket.
pub(crate) type SocketReader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a connection's socket.
pub(crate) type SocketWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// Why a round trip or a connection attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnectionFailure {
    /// `Connection` (Redis not reached, or the connection broke) or `Protocol` (bytes that
    /// are not RESP2).
    pub(crate) kind: FailureKind,
    /// What happened, for the store's last failure.
    pub(crate) message: String,
}

impl ConnectionFailure {
    /// A failure to reach Redis, or a broken connection.
    pub(crate) fn connection(message: String) -> ConnectionFailure {
        ConnectionFailure {
            kind: FailureKind::Connection,
            message,
        }
    }
}

/// Where Redis listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// Host and port.
    Tcp(String, u16),
    /// A unix socket's path.
    Unix(PathBuf),
}

/// A Redis server and how to log in; see the module doc.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Where it listens.
    address: Address,
    /// The database to `SELECT` (0: none sent).
    db: i64,
    /// The ACL user, if any (`AUTH user password`).
    username: Option<String>,
    /// The password (`AUTH`), if any.
    password: Option<String>,
}

impl fmt::Debug for Endpoint {
    /// Never prints the password.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Endpoint")
            .field("address", &self.address)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Endpoint {
    /// The endpoint of `client`'s URL; refuses TLS (`rediss://`), which the reader does not
    /// speak.
    pub(crate) fn new(client: &redis::Client) -> Result<Endpoint, String> {
        let info = client.get_connection_info();
        let address = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Address::Tcp(host.clone(), *port),
            ConnectionAddr::Unix(path) => Address::Unix(path.clone()),
            _ => {
                return Err(
                    "TLS (rediss://) is not supported: use redis:// or a unix socket".to_owned(),
                );
            }
        };
        let settings = info.redis_settings();
        Ok(Endpoint {
            address,
            db: settings.db(),
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
        })
    }

    /// Opens a connection and logs in: the socket's halves, ready for commands.
    pub(crate) async fn connect(&self) -> Result<(SocketReader, SocketWriter), ConnectionFailure> {
        let (mut reader, mut writer): (SocketReader, SocketWriter) = match &self.address {
            Address::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|error| self.failed(&error))?;
                // Pipelines are written whole; Nagle would only hold the next one back.
                stream
                    .set_nodelay(true)
                    .map_err(|error| self.failed(&error))?;
                let (reader, writer) = stream.into_split();
                (Box::new(reader), Box::new(writer))
            }
            Address::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|error| self.failed(&error))?;
                let (reader, writer) = stream.into_split();
                (Box::new(reader), Box::new(writer))
            }
        };
        self.handshake(&mut reader, &mut writer).await?;
        Ok((reader, writer))
    }

    /// Sends `AUTH` and `SELECT` as needed, pipelined, and checks that each answers `+OK`.
    async fn handshake(
        &self,
        reader: &mut SocketReader,
        writer: &mut SocketWriter,
    ) -> Result<(), ConnectionFailure> {
        let mut commands = Vec::new();
        let mut sent: Vec<&str> = Vec::new();
        if let Some(password) = &self.password {
            match &self.username {
                Some(user) => encode_command(
                    &[b"AUTH", user.as_bytes(), password.as_bytes()],
                    &mut commands,
                ),
                None => encode_command(&[b"AUTH", password.as_bytes()], &mut commands),
            }
            sent.push("AUTH");
        }
        let db = self.db.to_string();
        if self.db != 0 {
            encode_command(&[b"SELECT", db.as_bytes()], &mut commands);
            sent.push("SELECT");
        }
        if sent.is_empty() {
            return Ok(());
        }
        writer
            .write_all(&commands)
            .await
            .map_err(|error| self.failed(&error))?;
        let mut buffer = BytesMut::with_capacity(512);
        let mut at = 0;
        let mut items = Vec::new();
        for command in sent {
            let reply = loop {
                match parse_reply(&buffer, at, &mut items) {
                    Ok(Parsed::Complete { reply, end }) => {
                        at = end;
                        break reply;
                    }
                    Ok(Parsed::Incomplete) => {}
                    Err(error) => {
                        return Err(ConnectionFailure {
                            kind: FailureKind::Protocol,
                            message: error.to_string(),
                        });
                    }
                }
                match reader.read_buf(&mut buffer).await {
                    Ok(0) => {
                        return Err(ConnectionFailure::connection(format!(
                            "Redis at {} closed the connection during {command}",
                            self.address_text()
                        )));
                    }
                    Ok(_) => {}
                    Err(error) => return Err(self.failed(&error)),
                }
            };
            match reply {
                Reply::Status(span) if &buffer[span.start..span.start + span.len] == b"OK" => {}
                Reply::Error(span) => {
                    return Err(ConnectionFailure::connection(format!(
                        "Redis at {} refused {command}: {}",
                        self.address_text(),
                        String::from_utf8_lossy(&buffer[span.start..span.start + span.len])
                    )));
                }
                _ => {
                    return Err(ConnectionFailure {
                        kind: FailureKind::Protocol,
                        message: format!("Redis did not answer {command} with +OK"),
                    });
                }
            }
        }
        Ok(())
    }

    /// An I/O failure while connecting.
    fn failed(&self, error: &std::io::Error) -> ConnectionFailure {
        ConnectionFailure::connection(format!(
            "cannot connect to Redis at {}: {error}",
            self.address_text()
        ))
    }

    /// `host:port` or the socket's path, for messages.
    pub(crate) fn address_text(&self) -> String {
        match &self.address {
            Address::Tcp(host, port) => format!("{host}:{port}"),
            Address::Unix(path) => path.display().to_string(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Result<Endpoint, String> {
        Endpoint::new(&redis::Client::open(url).unwrap())
    }

    #[test]
    fn urls_give_address_database_and_credentials() {
        let parsed = endpoint("redis://alice:s3cret@example.com:6380/4").unwrap();
        assert_eq!(
            parsed,
            Endpoint {
                address: Address::Tcp("example.com".into(), 6380),
                db: 4,
                username: Some("alice".into()),
                password: Some("s3cret".into()),
            }
        );
        assert!(!format!("{parsed:?}").contains("s3cret"));
        let plain = endpoint("redis://127.0.0.1").unwrap();
        assert_eq!(
            (plain.address_text(), plain.db, plain.password),
            ("127.0.0.1:6379".to_owned(), 0, None)
        );
        let unix = endpoint("redis+unix:///tmp/redis.sock?db=2").unwrap();
        assert_eq!(
            (unix.address_text(), unix.db),
            ("/tmp/redis.sock".into(), 2)
        );
    }
}
