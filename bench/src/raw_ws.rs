//! The smallest WebSocket client that serves the subscriber load: a plain TCP stream, the
//! upgrade request written by hand, whole unfragmented text frames read from one buffer.
//!
//! The 10,000 subscribers share the machine's cores with the gateway they measure, so
//! whatever they spend per message is counted as the gateway's delivery latency. Through
//! tokio-tungstenite each message cost the harness about as much CPU as the gateway spent
//! sending it (waker proxies per poll, a frame codec, a zeroed read buffer); remote browsers
//! would not take that from the server's cores.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Client frames must be masked (RFC 6455 5.3); the key need not be secret here.
const MASK: [u8; 4] = [0x5a, 0x3c, 0x96, 0x0f];

pub struct RawSocket {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..]`.
    start: usize,
}

impl RawSocket {
    /// Connects and upgrades `GET /graphql` with the `graphql-transport-ws` subprotocol.
    pub async fn connect(addr: SocketAddr) -> Result<RawSocket, String> {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let upgrade = format!(
            "GET /graphql HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        );
        tcp.write_all(upgrade.as_bytes())
            .await
            .map_err(|e| format!("upgrade: {e}"))?;
        let mut socket = RawSocket {
            tcp,
            buf: Vec::with_capacity(4096),
            start: 0,
        };
        let end = loop {
            if let Some(at) = socket.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if socket.buf.len() > 8192 || socket.fill().await? == 0 {
                return Err("upgrade: no complete response".into());
            }
        };
        if !socket.buf.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&socket.buf[..end]).into_owned();
            return Err(format!("upgrade refused: {head}"));
        }
        socket.start = end;
        Ok(socket)
    }

    /// Reads more bytes into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> Result<usize, String> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        // Into the spare capacity: nothing is zeroed per read.
        self.tcp
            .read_buf(&mut self.buf)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends one masked text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.tcp
            .write_all(&masked_frame(0x1, text.as_bytes()))
            .await
            .map_err(|e| format!("send: {e}"))
    }

    /// The socket, as a standard non-blocking stream, and the bytes read but not yet taken.
    pub fn into_parts(self) -> Result<(std::net::TcpStream, Vec<u8>), String> {
        let rest = self.buf[self.start..].to_vec();
        let tcp = self.tcp.into_std().map_err(|e| e.to_string())?;
        Ok((tcp, rest))
    }

    /// The next text message; `None` when the server closes. Pings are answered.
    pub async fn next_text(&mut self) -> Result<Option<String>, String> {
        loop {
            if let Some((opcode, range, used)) = frame_at(&self.buf[self.start..])? {
                let at = self.start;
                self.start += used;
                let payload = &self.buf[at + range.start..at + range.end];
                match opcode {
                    0x1 => {
                        let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
                        return Ok(Some(text.to_string()));
                    }
                    0x8 => return Ok(None),
                    0x9 => {
                        let payload = payload.to_vec();
                        self.pong(&payload).await?;
                    }
                    0xA => {}
                    other => return Err(format!("unexpected frame opcode {other}")),
                }
                continue;
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn pong(&mut self, payload: &[u8]) -> Result<(), String> {
        self.tcp
            .write_all(&masked_frame(0xA, &payload[..payload.len().min(125)]))
            .await
            .map_err(|e| format!("pong: {e}"))
    }
}

/// One whole client frame of `opcode` (0x1 text, 0xA pong), masked.
pub fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// A whole server frame at the start of `bytes`: its opcode, where its payload lies and how
/// many bytes it takes; `None` until all of it has arrived.
pub fn frame_at(bytes: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>, usize)>, String> {
    let [b0, b1, ..] = *bytes else {
        return Ok(None);
    };
    if b0 & 0x80 == 0 {
        return Err("fragmented messages are not expected".into());
    }
    if b1 & 0x80 != 0 {
        return Err("a masked frame from the server".into());
    }
    let (len, head) = match b1 & 0x7f {
        126 => match bytes.get(2..4) {
            Some(l) => (u16::from_be_bytes([l[0], l[1]]) as usize, 4),
            None => return Ok(None),
        },
        127 => match bytes.get(2..10) {
            Some(l) => {
                let mut b = [0u8; 8];
                b.copy_from_slice(l);
                (u64::from_be_bytes(b) as usize, 10)
            }
            None => return Ok(None),
        },
        n => (n as usize, 2),
    };
    if bytes.len() < head + len {
        return Ok(None);
    }
    Ok(Some((b0 & 0x0f, head..head + len, head + len)))
}
