//! `fileread`: sequential read throughput of a large file. In conf the file
//! is trusted, so every 64 KiB chunk is checked against the manifest's
//! digest as it is read; a second row reads it as an allowed (unverified)
//! file to separate verification from the cost of getting the bytes.

use std::io::Write;
use std::path::Path;

use super::{progress, sample, standard_columns, Scenario, CONF, FILEREAD_C, GVISOR, NATIVE};
use crate::env::{argv, Env};
use crate::manifest::Spec;
use crate::report::{Better, Metric, ScenarioReport};

pub struct FileRead;

const BLOCK: usize = 1 << 20;

impl Scenario for FileRead {
    fn name(&self) -> &'static str {
        "fileread"
    }

    fn about(&self) -> &'static str {
        "read throughput of a large file in 1 MiB read(2) calls (conf: trusted file, verified chunk by chunk)"
    }

    fn run(&self, env: &mut Env) -> anyhow::Result<ScenarioReport> {
        let mb: usize = if env.opts.quick { 64 } else { 256 };
        let bin = env.compile("fileread", FILEREAD_C, &[])?;
        let data = env.scratch().join("fileread-data");
        std::fs::create_dir_all(&data)?;
        let file = data.join("big.bin");
        progress(self.name(), &format!("writing a {mb} MB file"), NATIVE);
        write_noise(&file, mb << 20)?;

        let mut trusted = Spec::new(&bin);
        trusted.trust = vec![file.to_string_lossy().into_owned()];
        let trusted = trusted.write(&env.scratch().join("fileread-trusted.toml"))?;
        let mut allowed = Spec::new(&bin);
        allowed.allow = vec![format!("{}/", data.display())];
        let allowed = allowed.write(&env.scratch().join("fileread-allowed.toml"))?;

        let mut r = ScenarioReport::new(self.name(), self.about(), &[NATIVE, CONF, GVISOR]);
        let reps = env.opts.reps().to_string();
        let block = BLOCK.to_string();
        let args = argv([
            bin.as_os_str(),
            file.as_os_str(),
            reps.as_ref(),
            block.as_ref(),
        ]);
        for (label, manifest) in [
            (format!("{mb} MB trusted file"), trusted),
            (format!("{mb} MB allowed file (conf: unverified)"), allowed),
        ] {
            let mut m = Metric::new(label.clone(), "MB/s", Better::Higher);
            for (col, runner) in standard_columns(&manifest) {
                progress(self.name(), &label, col);
                m.set(col, sample(env, &runner, &args));
            }
            r.metrics.push(m);
        }
        r.note("one untimed pass, then each timed pass opens, reads to the end and closes the file; MB = 10^6 bytes; the host page cache is warm in every column");
        r.note("the native and gVisor columns do the same thing in both rows (the rows differ only in conf's manifest)");
        Ok(r)
    }
}

/// `len` bytes of cheap pseudo-random data (so nothing compresses or
/// dedups it), written in 1 MiB pieces.
fn write_noise(path: &Path, len: usize) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; BLOCK];
    for _ in 0..len / BLOCK {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        f.write_all(&buf)?;
    }
    f.flush()
}
