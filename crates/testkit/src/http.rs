//! A tiny HTTP/1.1 server on `127.0.0.1:0` for downloader tests: serves one body at one
//! path with `Content-Length`, answers `Range: bytes=N-` with 206 (unless told not to),
//! answers 404 for any other path, can drop the connection after N body bytes, and records
//! every request. It runs on a std `TcpListener` in one thread, handles one connection at a
//! time (`Connection: close`), and stops when dropped.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One request the server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method (`GET`, `HEAD`, ...).
    pub method: String,
    /// The request target (path).
    pub path: String,
    /// The start offset of a `Range: bytes=N-` header, if one was sent.
    pub range_start: Option<u64>,
}

/// How the server answers.
#[derive(Debug, Clone)]
pub struct Config {
    /// The path that serves `body` (e.g. `"/cifar-10-binary.tar.gz"`).
    pub path: String,
    /// The bytes served at `path`.
    pub body: Arc<Vec<u8>>,
    /// Honour `Range: bytes=N-` with 206 Partial Content (true) or ignore it and send the
    /// whole body with 200 (false).
    pub ranges: bool,
    /// Cut the connection after this many body bytes of a response ...
    pub drop_after: Option<usize>,
    /// ... for this many responses (the first ones); later responses are complete.
    pub drops: usize,
}

impl Config {
    /// Serves `body` at `path`, with ranges and without drops.
    pub fn new(path: &str, body: Vec<u8>) -> Self {
        Self {
            path: path.to_string(),
            body: Arc::new(body),
            ranges: true,
            drop_after: None,
            drops: 0,
        }
    }

    /// Ignore `Range` headers (always answer 200 with the whole body).
    pub fn without_ranges(mut self) -> Self {
        self.ranges = false;
        self
    }

    /// Cut the first `times` responses after `bytes` body bytes.
    pub fn drop_after(mut self, bytes: usize, times: usize) -> Self {
        self.drop_after = Some(bytes);
        self.drops = times;
        self
    }

    /// Starts serving on `127.0.0.1` at a free port.
    pub fn start(self) -> io::Result<TestServer> {
        TestServer::start(self)
    }
}

/// A running test server; stops (and joins its thread) when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts serving `config` on `127.0.0.1` at a free port.
    pub fn start(config: Config) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handle = {
            let stop = Arc::clone(&stop);
            let log = Arc::clone(&log);
            std::thread::spawn(move || serve(listener, config, stop, log))
        };
        Ok(Self { addr, stop, log, handle: Some(handle) })
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // wake the blocking accept
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    config: Config,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Request>>>,
) {
    let mut drops_left = config.drops;
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let Ok(Some(req)) = read_request(&stream) else { continue };
        if let Ok(mut l) = log.lock() {
            l.push(req.clone());
        }
        let cut = if drops_left > 0 && config.drop_after.is_some() && req.path == config.path {
            drops_left -= 1;
            config.drop_after
        } else {
            None
        };
        let _ = respond(stream, &config, &req, cut);
    }
}

fn read_request(stream: &TcpStream) -> io::Result<Option<Request>> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut range_start = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range_start = value
                .trim()
                .strip_prefix("bytes=")
                .and_then(|v| v.strip_suffix('-'))
                .and_then(|v| v.parse().ok());
        }
    }
    Ok(Some(Request { method, path, range_start }))
}

fn respond(
    mut stream: TcpStream,
    config: &Config,
    req: &Request,
    cut: Option<usize>,
) -> io::Result<()> {
    if req.path != config.path {
        let body = b"not found\n";
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        return stream.flush();
    }
    let total = config.body.len();
    let (status, start) = match req.range_start {
        Some(s) if config.ranges && (s as usize) < total => ("206 Partial Content", s as usize),
        Some(s) if config.ranges && s as usize >= total => {
            write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return stream.flush();
        }
        _ => ("200 OK", 0),
    };
    let body = &config.body[start..];
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: {}\r\nConnection: close\r\n",
        body.len(),
        if config.ranges { "bytes" } else { "none" }
    );
    if start > 0 {
        head.push_str(&format!("Content-Range: bytes {start}-{}/{total}\r\n", total - 1));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if req.method == "HEAD" {
        return stream.flush();
    }
    let send = cut.map_or(body.len(), |n| n.min(body.len()));
    stream.write_all(&body[..send])?;
    stream.flush()?;
    // On a cut, close without sending the rest: the client sees a short body.
    stream.shutdown(std::net::Shutdown::Both)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str, range: Option<u64>) -> (String, Vec<u8>) {
        let mut s = TcpStream::connect(addr).unwrap();
        let range = range.map(|r| format!("Range: bytes={r}-\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{range}\r\n").unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(out[..split].to_vec()).unwrap();
        (head, out[split + 4..].to_vec())
    }

    #[test]
    fn serves_ranges_404_and_drops() {
        let body: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
        let server = Config::new("/f", body.clone()).drop_after(100, 1).start().unwrap();
        let (head, got) = get(server.addr(), "/f", None);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Content-Length: 1000"));
        assert_eq!(got, &body[..100]); // cut
        let (head, got) = get(server.addr(), "/f", Some(100));
        assert!(head.starts_with("HTTP/1.1 206"), "{head}");
        assert!(head.contains("Content-Range: bytes 100-999/1000"));
        assert_eq!(got, &body[100..]);
        let (head, _) = get(server.addr(), "/missing", None);
        assert!(head.starts_with("HTTP/1.1 404"));
        let (head, _) = get(server.addr(), "/f", Some(1000));
        assert!(head.starts_with("HTTP/1.1 416"));
        let reqs = server.requests();
        assert_eq!(reqs.len(), 4);
        assert_eq!(reqs[1].range_start, Some(100));
        assert_eq!(reqs[2].path, "/missing");
    }

    #[test]
    fn without_ranges_sends_whole_body() {
        let server = Config::new("/f", vec![7; 50]).without_ranges().start().unwrap();
        let (head, got) = get(server.addr(), "/f", Some(10));
        assert!(head.starts_with("HTTP/1.1 200"));
        assert_eq!(got, vec![7; 50]);
    }
}
