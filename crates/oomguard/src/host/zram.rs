//! zram reader: lists `/sys/block/zram<N>` under an injectable sysfs root and reads each
//! device's `disksize` and `mm_stat` (parsed by `oomguard_core::host::zram`). A device removed
//! between the listing and the read (`hot_remove`) is skipped, not an error.

use super::ReadError;
use oomguard_core::host::zram::{self, ZramDevice};
use std::path::{Path, PathBuf};

/// Reader of the zram devices under `root/block` (the real root is `/sys`).
#[derive(Debug, Clone)]
pub struct ZramFs {
    root: PathBuf,
}

impl Default for ZramFs {
    fn default() -> Self {
        ZramFs::new("/sys")
    }
}

/// `zram` followed by digits only (not `zram-control`, which lives in /sys/class anyway).
fn is_zram_name(name: &str) -> bool {
    name.strip_prefix("zram")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl ZramFs {
    /// A reader of the sysfs tree at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ZramFs { root: root.into() }
    }

    /// The `block` directory read.
    pub fn block_dir(&self) -> PathBuf {
        self.root.join("block")
    }

    /// Every zram device, in name order. No `block` directory or no zram module: an empty list.
    pub fn read_devices(&self) -> Result<Vec<ZramDevice>, ReadError> {
        let dir = self.block_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => {
                return match ReadError::from_io(dir, e, false) {
                    ReadError::NotPresent { .. } => Ok(Vec::new()),
                    other => Err(other),
                }
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| is_zram_name(n))
            .collect();
        // zram2 before zram10.
        names.sort_by_key(|n| (n.len(), n.clone()));
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match self.read_device(&name) {
                Ok(d) => out.push(d),
                // Hot-removed since the listing.
                Err(ReadError::NotPresent { .. } | ReadError::Vanished { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// One device by name (`zram0`).
    pub fn read_device(&self, name: &str) -> Result<ZramDevice, ReadError> {
        let dev = self.block_dir().join(name);
        let read = |file: &str| -> Result<(PathBuf, Vec<u8>), ReadError> {
            let p = dev.join(file);
            std::fs::read(&p)
                .map(|t| (p.clone(), t))
                .map_err(|e| ReadError::from_io(p, e, false))
        };
        let (p, t) = read("disksize")?;
        let disksize_bytes = zram::parse_disksize(&t).map_err(|e| ReadError::malformed(p, e))?;
        let (p, t) = read("mm_stat")?;
        let mm = zram::parse_mm_stat(&t).map_err(|e| ReadError::malformed(p, e))?;
        Ok(ZramDevice {
            name: name.to_owned(),
            disksize_bytes,
            mm,
        })
    }

    /// The sysfs root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FX: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../oomguard-core/tests/fixtures/host/"
    );

    fn fx(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FX}{name}")).unwrap()
    }

    fn write_dev(root: &Path, name: &str, disksize: &str, mm: &str) {
        let d = root.join("block").join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("disksize"), fx(disksize)).unwrap();
        std::fs::write(d.join("mm_stat"), fx(mm)).unwrap();
    }

    #[test]
    fn lists_and_reads_devices_on_a_fake_tree() {
        let t = tempfile::tempdir().unwrap();
        let z = ZramFs::new(t.path());
        assert!(z.read_devices().unwrap().is_empty(), "no block dir");
        write_dev(
            t.path(),
            "zram10",
            "zram-disksize-64M-6.18.txt",
            "zram-mm_stat-full-random-6.18.txt",
        );
        write_dev(
            t.path(),
            "zram2",
            "zram-disksize-unset-6.18.txt",
            "zram-mm_stat-unset-6.18.txt",
        );
        std::fs::create_dir_all(t.path().join("block/vda")).unwrap();
        std::fs::create_dir_all(t.path().join("block/zramx")).unwrap();
        // Listed but its files gone (hot-removed mid-read): skipped.
        std::fs::create_dir_all(t.path().join("block/zram3")).unwrap();
        let d = z.read_devices().unwrap();
        let names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["zram2", "zram10"]);
        assert_eq!(d[1].disksize_bytes, 64 << 20);
        assert_eq!(d[1].mm.orig_data_bytes, 64 << 20);
        // Garbled text: an error naming the file.
        std::fs::write(t.path().join("block/zram2/mm_stat"), "1 2 x 4 5\n").unwrap();
        let e = z.read_devices().unwrap_err().to_string();
        assert!(
            e.contains("zram2/mm_stat") && e.contains("mem_used_total"),
            "{e}"
        );
    }
}
