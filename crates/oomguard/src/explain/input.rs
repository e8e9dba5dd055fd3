//! Where `explain` reads from: files (plain or gzip, detected by content, not by name), stdin,
//! or this machine's own kernel log found by trying, in order, the /dev/kmsg backlog, `dmesg`,
//! `journalctl -k -o json`, /var/log/kern.log and /var/log/messages.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A named input: what to call it in messages, and the bytes.
pub struct Input {
    pub name: String,
    pub reader: Box<dyn Read>,
}

/// Opens a file argument (`-` is stdin), gunzipping when the content starts with the gzip magic.
pub fn open_arg(path: &Path) -> anyhow::Result<Input> {
    if path == Path::new("-") {
        return Ok(Input {
            name: "stdin".into(),
            reader: maybe_gunzip(Box::new(io::stdin()))?,
        });
    }
    let name = path.display().to_string();
    let f = File::open(path).map_err(|e| anyhow::anyhow!("cannot open {name}: {e}"))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        anyhow::bail!("cannot read {name}: it is a directory");
    }
    let reader =
        maybe_gunzip(Box::new(f)).map_err(|e| anyhow::anyhow!("cannot read {name}: {e}"))?;
    Ok(Input { name, reader })
}

/// Wraps `r` in a gzip decoder when its first two bytes are the gzip magic.
fn maybe_gunzip(r: Box<dyn Read>) -> io::Result<Box<dyn Read>> {
    let mut br = BufReader::with_capacity(64 * 1024, r);
    let head = br.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(br)))
    } else {
        Ok(Box::new(br))
    }
}

/// This machine's boot time in seconds since the epoch, to turn the seconds-since-boot stamps
/// of its live kernel log into wall-clock times: CLOCK_REALTIME − CLOCK_BOOTTIME (what `dmesg
/// -T` uses; like it, off by the time spent suspended, since printk stamps stop during suspend),
/// else `btime` from /proc/stat (whole seconds).
pub fn boot_epoch_s(root: &Path) -> Option<f64> {
    let clock = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec to the valid pointer it is given.
        let rc = unsafe { libc::clock_gettime(id, &mut ts) };
        (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    };
    if root == Path::new("/") {
        if let (Some(real), Some(boot)) = (clock(libc::CLOCK_REALTIME), clock(libc::CLOCK_BOOTTIME))
        {
            return Some(real - boot);
        }
    }
    let stat = std::fs::read_to_string(root.join("proc/stat")).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|v| v as f64)
}

/// The machine's own kernel log, and a line saying where it came from.
pub fn system_log(root: &Path) -> anyhow::Result<(Input, String)> {
    let mut tried = Vec::new();
    match KmsgBacklog::open(&root.join("dev/kmsg")) {
        Ok(k) => {
            let note =
                "reading the kernel log from /dev/kmsg (the ring buffer's backlog)".to_owned();
            return Ok((
                Input {
                    name: "/dev/kmsg".into(),
                    reader: Box::new(k),
                },
                note,
            ));
        }
        Err(e) => tried.push(format!("/dev/kmsg: {e}")),
    }
    for (prog, args, name) in [
        ("dmesg", &[][..], "dmesg"),
        (
            "journalctl",
            &["-k", "-o", "json", "--no-pager", "-q"][..],
            "journalctl -k",
        ),
    ] {
        match run_capture(prog, args) {
            Ok(out) if !out.is_empty() => {
                let note = format!("reading the kernel log from `{name}`");
                return Ok((
                    Input {
                        name: name.into(),
                        reader: Box::new(io::Cursor::new(out)),
                    },
                    note,
                ));
            }
            Ok(_) => tried.push(format!("{name}: no output")),
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    for p in ["var/log/kern.log", "var/log/messages"] {
        let path: PathBuf = root.join(p);
        match open_arg(&path) {
            Ok(input) => {
                let note = format!("reading the kernel log from {}", path.display());
                return Ok((input, note));
            }
            Err(e) => tried.push(e.to_string()),
        }
    }
    anyhow::bail!("no kernel log could be read; tried: {}", tried.join("; "))
}

/// The /dev/kmsg backlog as a stream: every record still in the ring buffer, one per read(),
/// until EAGAIN. Records overwritten while reading (EPIPE) are skipped; reading goes on at the
/// oldest record left. Streaming keeps memory flat however large `log_buf_len` is.
struct KmsgBacklog {
    f: File,
    rec: Box<[u8; 8192]>,
    len: usize,
    pos: usize,
}

impl KmsgBacklog {
    /// Opens and reads the first record, so that a permission error shows here, not later.
    fn open(path: &Path) -> io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        // 8 KiB: a record never exceeds it (smaller buffers get EINVAL on long records).
        let mut k = KmsgBacklog {
            f,
            rec: Box::new([0u8; 8192]),
            len: 0,
            pos: 0,
        };
        if !k.next_record()? {
            return Err(io::Error::other("the ring buffer is empty"));
        }
        Ok(k)
    }

    /// Loads the next record (newline-terminated); false at the end of the backlog.
    fn next_record(&mut self) -> io::Result<bool> {
        loop {
            match self.f.read(&mut self.rec[..8191]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    let mut n = n;
                    if self.rec[n - 1] != b'\n' {
                        self.rec[n] = b'\n';
                        n += 1;
                    }
                    self.len = n;
                    self.pos = 0;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Read for KmsgBacklog {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len && !self.next_record()? {
            return Ok(0);
        }
        let n = buf.len().min(self.len - self.pos);
        buf[..n].copy_from_slice(&self.rec[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs a program directly (no shell) and returns its stdout, with a time limit on the wait.
fn run_capture(prog: &str, args: &[&str]) -> io::Result<Vec<u8>> {
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut out = Vec::new();
    if let Some(mut so) = child.stdout.take() {
        so.read_to_end(&mut out)?;
    }
    let status = child.wait()?;
    if !status.success() && out.is_empty() {
        return Err(io::Error::other(format!("exited with {status}")));
    }
    Ok(out)
}
