//! `journalctl -o json` records: the kernel's lines of a journal export, with their stamps and
//! host.

/// What oomguard needs of one journal entry.
pub struct Record {
    pub kernel: bool,
    pub message: String,
    pub host: Option<String>,
    pub time: Option<String>,
    pub kernel_time_s: Option<f64>,
}

impl Record {
    pub fn parse(line: &str) -> Option<Record> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let obj = v.as_object()?;
        let text = |k: &str| obj.get(k).and_then(|x| x.as_str()).map(str::to_owned);
        let num = |k: &str| text(k).and_then(|s| s.parse::<u64>().ok());
        let message = match obj.get("MESSAGE")? {
            serde_json::Value::String(s) => s.clone(),
            // Non-UTF-8 messages are stored as byte arrays.
            serde_json::Value::Array(a) => {
                let bytes: Vec<u8> = a
                    .iter()
                    .filter_map(|x| x.as_u64())
                    .map(|b| b as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => return None,
        };
        // journald files userspace writes to /dev/kmsg under _TRANSPORT=kernel too, with
        // their own facility (seen on 6.18: SYSLOG_FACILITY=1): only facility 0 is the kernel.
        let facility_ok = text("SYSLOG_FACILITY").is_none_or(|f| f == "0");
        let kernel = facility_ok
            && (text("_TRANSPORT").as_deref() == Some("kernel")
                || (text("_TRANSPORT").is_none()
                    && text("SYSLOG_IDENTIFIER").as_deref() == Some("kernel")));
        Some(Record {
            kernel,
            message,
            host: text("_HOSTNAME"),
            time: num("__REALTIME_TIMESTAMP").map(crate::time::format_utc_usec),
            kernel_time_s: num("_SOURCE_MONOTONIC_TIMESTAMP").map(|u| u as f64 / 1e6),
        })
    }
}
