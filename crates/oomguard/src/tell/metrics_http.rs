//! The Prometheus endpoint: an HTTP/1.0 responder that runs inside the daemon's poll loop and
//! serves the registry of `super::metrics` (`GET /metrics`).
//!
//! It never blocks its caller: the listener and every connection are non-blocking; a connection
//! has [`REQUEST_DEADLINE`] to send its request (else 408) and [`CONNECTION_DEADLINE`] in all,
//! [`MAX_REQUEST_BYTES`] for its request head (else 431), and at most [`MAX_CONNECTIONS`] are
//! open (more are closed at accept). Garbage gets 400, a path other than `/metrics` 404, a method
//! other than GET/HEAD 405.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::metrics::Metrics;

/// A request has this long to arrive in full (slowloris guard).
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// A connection is closed after this long whatever its state (a client that never reads).
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Largest request head read.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Connections open at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 16;
/// Connections accepted per `on_readable` call (the rest wait in the backlog).
const ACCEPTS_PER_CALL: usize = 32;

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    req: Vec<u8>,
    accepted: Instant,
    out: Vec<u8>,
    out_pos: usize,
    /// The response is queued: no more reading.
    responding: bool,
}

/// Counters of the responder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub accepted: u64,
    pub refused_full: u64,
    pub timed_out: u64,
    pub responses: u64,
}

/// The in-loop HTTP/1.0 responder. See the module docs.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    conns: Vec<Conn>,
    stats: ServerStats,
    request_deadline: Duration,
    connection_deadline: Duration,
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// Not complete yet.
    Partial,
    Respond {
        code: u16,
        head_only: bool,
    },
}

/// Classifies the request bytes read so far.
fn parse_request(req: &[u8]) -> Parsed {
    let line_end = req.iter().position(|b| *b == b'\n');
    let first = &req[..line_end.unwrap_or(req.len())];
    // The method must be an upper-case token followed by a space; anything else is garbage
    // as soon as it shows (no need to wait for a newline that never comes).
    let method_len = first.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if method_len == 0 && !first.is_empty() {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    }
    if method_len > 10 || (method_len < first.len() && first[method_len] != b' ') {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    }
    let complete = req.windows(4).any(|w| w == b"\r\n\r\n") || req.windows(2).any(|w| w == b"\n\n");
    if !complete {
        return Parsed::Partial;
    }
    let line = String::from_utf8_lossy(first);
    let mut parts = line.trim_end_matches(['\r', '\n']).split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Parsed::Respond {
            code: 400,
            head_only: false,
        };
    }
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return Parsed::Respond {
            code: 405,
            head_only: false,
        };
    }
    let path = target.split('?').next().unwrap_or("");
    Parsed::Respond {
        code: if path == "/metrics" { 200 } else { 404 },
        head_only,
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

impl MetricsServer {
    /// Binds `addr` (`127.0.0.1:9258`; a bare port or `:PORT` means 127.0.0.1: exposing
    /// the endpoint beyond the host must be asked for), non-blocking.
    pub fn bind(addr: &str) -> std::io::Result<Self> {
        let addr: SocketAddr = match addr.trim_start_matches(':').parse::<u16>() {
            Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            Err(_) => addr.parse().map_err(|e| {
                std::io::Error::new(ErrorKind::InvalidInput, format!("{addr}: {e}"))
            })?,
        };
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer {
            listener,
            conns: Vec::new(),
            stats: ServerStats::default(),
            request_deadline: REQUEST_DEADLINE,
            connection_deadline: CONNECTION_DEADLINE,
        })
    }

    /// Other deadlines than [`REQUEST_DEADLINE`] / [`CONNECTION_DEADLINE`] (tests).
    pub fn set_deadlines(&mut self, request: Duration, connection: Duration) {
        self.request_deadline = request;
        self.connection_deadline = connection.max(request);
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The fds to poll and their interest: the listener and reading connections for input,
    /// connections with a response queued for output.
    /// Calls `f` for each fd to poll (the listener, then each connection), without allocating.
    pub fn for_each_poll_fd(&self, f: &mut dyn FnMut(BorrowedFd<'_>, rustix::event::PollFlags)) {
        use rustix::event::PollFlags;
        f(self.listener.as_fd(), PollFlags::IN);
        for c in &self.conns {
            f(
                c.stream.as_fd(),
                if c.responding {
                    PollFlags::OUT
                } else {
                    PollFlags::IN
                },
            );
        }
    }

    pub fn poll_fds<'a>(&'a self, out: &mut Vec<(BorrowedFd<'a>, rustix::event::PollFlags)>) {
        use rustix::event::PollFlags;
        out.push((self.listener.as_fd(), PollFlags::IN));
        for c in &self.conns {
            let f = if c.responding {
                PollFlags::OUT
            } else {
                PollFlags::IN
            };
            out.push((c.stream.as_fd(), f));
        }
    }

    /// Deadline of the oldest connection, when one is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .map(|c| {
                if c.responding {
                    c.accepted + self.connection_deadline
                } else {
                    c.accepted + self.request_deadline
                }
            })
            .min()
    }

    /// Accepts, reads, answers and writes whatever is ready, then expires connections past
    /// their deadline. Every socket is non-blocking: this never waits. Call it when any of
    /// [`MetricsServer::poll_fds`] is ready, and at [`MetricsServer::next_deadline`].
    pub fn on_ready(&mut self, now: Instant, metrics: &mut Metrics) {
        for _ in 0..ACCEPTS_PER_CALL {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.conns.len() >= MAX_CONNECTIONS || stream.set_nonblocking(true).is_err()
                    {
                        self.stats.refused_full += 1;
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    self.stats.accepted += 1;
                    self.conns.push(Conn {
                        stream,
                        req: Vec::new(),
                        accepted: now,
                        out: Vec::new(),
                        out_pos: 0,
                        responding: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock: backlog empty. EMFILE and the like: try next time.
                Err(_) => break,
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            let keep = self.progress(i, now, metrics);
            if keep {
                i += 1;
            } else {
                self.conns.swap_remove(i);
            }
        }
    }

    /// `on_readable` under its conventional name.
    pub fn on_readable(&mut self, now: Instant, metrics: &mut Metrics) {
        self.on_ready(now, metrics);
    }

    /// Expires what is past its deadline (same work as `on_ready`).
    pub fn on_tick(&mut self, now: Instant, metrics: &mut Metrics) {
        self.on_ready(now, metrics);
    }

    fn respond(c: &mut Conn, code: u16, head_only: bool, metrics: &mut Metrics) {
        metrics.count_http(code);
        c.responding = true;
        c.out.clear();
        c.out_pos = 0;
        let (ctype, body): (&str, &[u8]) = if code == 200 {
            (
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render().as_bytes(),
            )
        } else {
            ("text/plain; charset=utf-8", reason(code).as_bytes())
        };
        let _ = write!(
            c.out,
            "HTTP/1.0 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reason(code),
            body.len()
        );
        if !head_only {
            c.out.extend_from_slice(body);
            if code != 200 {
                c.out.push(b'\n');
            }
        }
        // Nothing more is read from this client.
        let _ = c.stream.shutdown(std::net::Shutdown::Read);
    }

    /// Moves connection `i` along; false when it is done and must be dropped.
    fn progress(&mut self, i: usize, now: Instant, metrics: &mut Metrics) -> bool {
        let c = &mut self.conns[i];
        if !c.responding {
            let mut buf = [0u8; 1024];
            // Bounded: at most MAX_REQUEST_BYTES / 1024 + 1 reads.
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => {
                        let room = MAX_REQUEST_BYTES + 1 - c.req.len().min(MAX_REQUEST_BYTES + 1);
                        c.req.extend_from_slice(&buf[..n.min(room)]);
                        if c.req.len() > MAX_REQUEST_BYTES {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
            }
            match parse_request(&c.req) {
                Parsed::Respond { code, head_only } => Self::respond(c, code, head_only, metrics),
                Parsed::Partial if c.req.len() > MAX_REQUEST_BYTES => {
                    Self::respond(c, 431, false, metrics)
                }
                Parsed::Partial if now >= c.accepted + self.request_deadline => {
                    self.stats.timed_out += 1;
                    Self::respond(c, 408, false, metrics)
                }
                Parsed::Partial => return true,
            }
        }
        while c.out_pos < c.out.len() {
            match c.stream.write(&c.out[c.out_pos..]) {
                Ok(0) => return false,
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if now >= c.accepted + self.connection_deadline {
                        self.stats.timed_out += 1;
                        return false;
                    }
                    return true;
                }
                Err(_) => return false,
            }
        }
        self.stats.responses += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tell::metrics::tests::registry;
    use crate::tell::metrics::HTTP_CODES;
    use std::net::Shutdown;
    use std::sync::mpsc;

    #[test]
    fn request_parsing() {
        let r = |s: &[u8]| parse_request(s);
        assert_eq!(
            r(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Respond {
                code: 200,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET /metrics?x=1 HTTP/1.0\n\n"),
            Parsed::Respond {
                code: 200,
                head_only: false
            }
        );
        assert_eq!(
            r(b"HEAD /metrics HTTP/1.0\r\n\r\n"),
            Parsed::Respond {
                code: 200,
                head_only: true
            }
        );
        assert_eq!(
            r(b"GET / HTTP/1.1\r\n\r\n"),
            Parsed::Respond {
                code: 404,
                head_only: false
            }
        );
        assert_eq!(
            r(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Parsed::Respond {
                code: 405,
                head_only: false
            }
        );
        assert_eq!(r(b"GET /metr"), Parsed::Partial);
        assert_eq!(r(b""), Parsed::Partial);
        assert_eq!(
            r(b"\x16\x03\x01\x02"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"get /metrics"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET/metrics"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET /metrics\r\n\r\n"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
        assert_eq!(
            r(b"GET metrics HTTP/1.1\r\n\r\n"),
            Parsed::Respond {
                code: 400,
                head_only: false
            }
        );
    }

    /// Drives the server as the daemon's loop would (poll + on_ready) for `run`, measuring the
    /// longest `on_ready` call.
    fn serve(server: &mut MetricsServer, m: &mut Metrics, run: Duration) -> Duration {
        use rustix::event::{poll, PollFd, Timespec};
        let end = Instant::now() + run;
        let mut longest = Duration::ZERO;
        while Instant::now() < end {
            let now = Instant::now();
            let wake = server.next_deadline().unwrap_or(end).min(end);
            let timeout = wake.saturating_duration_since(now);
            {
                let mut fds = Vec::new();
                server.poll_fds(&mut fds);
                let mut pfds: Vec<PollFd<'_>> = fds
                    .iter()
                    .map(|(fd, fl)| PollFd::from_borrowed_fd(*fd, *fl))
                    .collect();
                let ts = Timespec {
                    tv_sec: timeout.as_secs() as i64,
                    tv_nsec: i64::from(timeout.subsec_nanos()),
                };
                let _ = poll(&mut pfds, Some(&ts));
            }
            let t = Instant::now();
            server.on_ready(t, m);
            longest = longest.max(t.elapsed());
        }
        longest
    }

    fn get(addr: SocketAddr, req: &[u8]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(req)?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn slow_huge_and_garbage_clients_never_stall_the_loop() {
        let mut server = MetricsServer::bind("127.0.0.1:0").unwrap();
        server.set_deadlines(Duration::from_millis(500), Duration::from_secs(1));
        let addr = server.local_addr().unwrap();
        let mut m = registry();
        let (tx, rx) = mpsc::channel::<(&'static str, String, Duration)>();

        let t = tx.clone();
        let slow = std::thread::spawn(move || {
            // Connects and sends nothing: answered 408 at the request deadline and closed.
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            t.send(("slow", out, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let slow_partial = std::thread::spawn(move || {
            // Sends half a request, then nothing (slowloris).
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            t.send(("slow_partial", out, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let huge = std::thread::spawn(move || {
            let start = Instant::now();
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
            for i in 0..20_000 {
                req.extend_from_slice(format!("X-Filler-{i}: aaaaaaaaaaaaaaaa\r\n").as_bytes());
            }
            // The server stops reading after 4 KiB; the write may fail with a reset.
            let _ = s.write_all(&req);
            let _ = s.shutdown(Shutdown::Write);
            let mut out = String::new();
            let r = s.read_to_string(&mut out);
            let shown = match r {
                Ok(_) => out,
                Err(e) => format!("error: {e}"),
            };
            t.send(("huge", shown, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let garbage = std::thread::spawn(move || {
            let start = Instant::now();
            let out = get(
                addr,
                b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03garbage\r\n\r\n",
            )
            .unwrap_or_else(|e| format!("error: {e}"));
            t.send(("garbage", out, start.elapsed())).unwrap();
        });
        let t = tx.clone();
        let good = std::thread::spawn(move || {
            // Scrapes keep working while the others hang around.
            for _ in 0..20 {
                let start = Instant::now();
                let out = get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
                t.send(("good", out, start.elapsed())).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = get(addr, b"GET /nothing HTTP/1.0\r\n\r\n").unwrap();
            t.send(("404", out, Duration::ZERO)).unwrap();
        });
        drop(tx);
        let longest = serve(&mut server, &mut m, Duration::from_millis(1500));
        for h in [slow, slow_partial, huge, garbage, good] {
            h.join().unwrap();
        }
        let results: Vec<_> = rx.iter().collect();
        eprintln!("longest on_ready call: {longest:?}");
        assert!(
            longest < Duration::from_millis(20),
            "on_ready took {longest:?}"
        );
        let goods: Vec<_> = results.iter().filter(|r| r.0 == "good").collect();
        assert_eq!(goods.len(), 20);
        for (_, body, took) in &goods {
            assert!(body.starts_with("HTTP/1.0 200 OK\r\n"), "{body}");
            assert!(body.contains("oomguard_build_info"));
            assert!(*took < Duration::from_millis(200), "a scrape took {took:?}");
        }
        let one = |k: &str| results.iter().find(|r| r.0 == k).unwrap();
        let (_, body, took) = one("slow");
        assert!(body.starts_with("HTTP/1.0 408"), "{body}");
        assert!(
            *took >= Duration::from_millis(450) && *took < Duration::from_millis(900),
            "{took:?}"
        );
        let (_, body, _) = one("slow_partial");
        assert!(body.starts_with("HTTP/1.0 408"), "{body}");
        let (_, body, took) = one("huge");
        assert!(
            body.starts_with("HTTP/1.0 431") || body.starts_with("error:"),
            "{body}"
        );
        assert!(*took < Duration::from_millis(900));
        let (_, body, _) = one("garbage");
        assert!(
            body.starts_with("HTTP/1.0 400") || body.starts_with("error:"),
            "{body}"
        );
        let (_, body, _) = one("404");
        assert!(body.starts_with("HTTP/1.0 404"), "{body}");
        assert_eq!(server.connections(), 0, "every connection closed");
        let code = |c: u16| m.http_requests_total[HTTP_CODES.iter().position(|x| *x == c).unwrap()];
        assert_eq!(code(200), 20);
        assert_eq!(code(408), 2);
        assert_eq!(code(404), 1);
    }

    #[test]
    fn connection_cap_refuses_extra_connections() {
        let mut server = MetricsServer::bind("127.0.0.1:0").unwrap();
        server.set_deadlines(Duration::from_millis(300), Duration::from_millis(300));
        let addr = server.local_addr().unwrap();
        let mut m = registry();
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 4)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        server.on_ready(Instant::now(), &mut m);
        assert_eq!(server.connections(), MAX_CONNECTIONS);
        assert_eq!(server.stats().refused_full, 4);
        serve(&mut server, &mut m, Duration::from_millis(400));
        assert_eq!(server.connections(), 0);
        drop(idle);
    }
}
