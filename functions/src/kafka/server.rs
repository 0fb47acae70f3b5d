//! Accepting connections, reading request frames and writing answers in order.
//!
//! Each connection has a reader task (frames off the socket) and a loop that dispatches each
//! frame as it arrives and writes the answers in request order, whatever order they finish in
//! (clients pipeline, and Kafka promises in-order answers per connection).
//!
//! Bounds per connection: a frame is at most [`FRAME_BYTES_MAX`]; the frames read but not yet
//! answered hold at most [`CONNECTION_BUFFER_BYTES_MAX`] bytes and number at most
//! [`IN_FLIGHT_MAX`]; past either the reader stops reading, so a fast client waits on TCP
//! instead of filling memory. A frame that breaks the protocol closes its connection with a
//! log line, after the answers already due are written. When the client closes its end, the
//! answers not yet written are dropped with their futures (group waits end at once).

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Broker;
use super::apis;

/// Largest request frame, as Kafka's `socket.request.max.bytes`.
pub const FRAME_BYTES_MAX: usize = 100 * 1024 * 1024;
/// Bytes of requests one connection may have read and not yet answered.
pub const CONNECTION_BUFFER_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Requests one connection may have read and not yet answered.
pub const IN_FLIGHT_MAX: usize = 64;

/// Accepts connections until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(connection(stream, peer, Arc::clone(&broker)));
                }
                // Out of file descriptors and the like: pause rather than spin.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => {
                tracing::info!("shutting down");
                return;
            }
        }
    }
}

/// A request frame and the share of the connection's buffer it holds until answered.
struct Frame {
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// Serves one connection until the client closes it or breaks the protocol.
pub async fn connection(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>) {
    let (rd, mut wr) = stream.into_split();
    let budget = Arc::new(Semaphore::new(CONNECTION_BUFFER_BYTES_MAX));
    let (tx, mut rx) = mpsc::channel::<Frame>(IN_FLIGHT_MAX);
    let reader = tokio::spawn(read_frames(rd, budget, tx));
    let mut in_flight = FuturesOrdered::new();
    let mut closing: Option<String> = None;
    loop {
        if closing.is_some() && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            Some(done) = in_flight.next() => {
                let (answer, _permit): (Result<Option<apis::Framed>, apis::ProtocolError>, _) = done;
                match answer {
                    Ok(Some(framed)) => {
                        let written = match wr.write_all(&framed.head).await {
                            Ok(()) => wr.write_all(&framed.body).await,
                            Err(e) => Err(e),
                        };
                        if let Err(e) = written {
                            closing.get_or_insert(format!("write failed: {e}"));
                            break;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        closing = Some(e.to_string());
                        break;
                    }
                }
            }
            frame = rx.recv(), if closing.is_none() && in_flight.len() < IN_FLIGHT_MAX => {
                match frame {
                    Some(frame) => match apis::dispatch(&broker, frame.bytes) {
                        Ok(response) => {
                            let permit = frame._permit;
                            in_flight.push_back(async move { (response.await, permit) });
                        }
                        Err(e) => closing = Some(e.to_string()),
                    },
                    // The client is gone: what it waits for cannot reach it, so the answers
                    // still due are dropped rather than awaited (a JoinGroup may wait minutes on
                    // its group). A produce already queued still lands: its partition worker
                    // owns the append, not this future.
                    None => break,
                }
            }
        }
    }
    reader.abort();
    let reason = match reader.await {
        Ok(Err(e)) => Some(e),
        _ => closing.filter(|c| !c.is_empty()),
    };
    if let Some(reason) = reason {
        tracing::warn!(%peer, "closing connection: {reason}");
    }
    let _ = wr.shutdown().await;
}

/// Reads length-prefixed frames until EOF; an error names the broken frame.
async fn read_frames(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    budget: Arc<Semaphore>,
    tx: mpsc::Sender<Frame>,
) -> Result<(), String> {
    loop {
        let mut prefix = [0u8; 4];
        match rd.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("read failed: {e}")),
        }
        let len = i32::from_be_bytes(prefix);
        let size = usize::try_from(len)
            .ok()
            .filter(|&n| n > 0 && n <= FRAME_BYTES_MAX)
            .ok_or_else(|| format!("frame length {len} is not 1 to {FRAME_BYTES_MAX}"))?;
        let permit = Arc::clone(&budget)
            .acquire_many_owned(size as u32)
            .await
            .map_err(|_| "connection buffer closed".to_string())?;
        // Read into spare capacity: no zeroing of a buffer about to be overwritten.
        let mut bytes = BytesMut::with_capacity(size);
        while bytes.len() < size {
            let mut part = (&mut rd).take((size - bytes.len()) as u64);
            match part.read_buf(&mut bytes).await {
                Ok(0) => return Err(format!("frame of {size} bytes cut short")),
                Ok(_) => {}
                Err(e) => return Err(format!("frame of {size} bytes cut short: {e}")),
            }
        }
        let frame = Frame {
            bytes: bytes.freeze(),
            _permit: permit,
        };
        if tx.send(frame).await.is_err() {
            return Ok(());
        }
    }
}
