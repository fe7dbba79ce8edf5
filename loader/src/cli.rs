//! The `conf-run` command line.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use conf_abi::manifest::{EnvValue, LogLevel};
use conf_manifest::ResolveOptions;

use crate::exit::ExitCode;
use crate::host::hostile;
use crate::host::process::ChildKind;
use crate::image::{self, BuiltImage};
use crate::run::{self, Backend, RunOptions};

/// Run a Linux program inside an enclave.
///
/// With a command and no --manifest, conf-run synthesizes a manifest: the
/// program found on PATH, its interpreter and libraries, its runtime's own
/// files (Python's prefix, JAVA_HOME) and the working directory are trusted
/// (contents verified), /tmp is in enclave memory, and the environment is
/// carried in. The program's exit status is conf-run's exit status (128+n
/// when it dies of signal n); conf-run's own failures exit with 125 (setup),
/// 126 (the program cannot be run) or 127 (not found).
#[derive(Parser, Debug)]
#[command(
    name = "conf-run",
    version,
    about = "Run a Linux program inside an enclave: with a command and no --manifest, conf-run \
             synthesizes the manifest (zero-config); with --manifest, it runs yours",
    long_about = None
)]
#[command(
    after_help = "Examples:\n  conf-run python3 app.py\n  conf-run --manifest app.toml\n  conf-run --manifest app.toml --sig app.sig\n  conf-run --allow ./data python3 app.py"
)]
pub struct Args {
    /// Manifest (TOML, or resolved bytes from `conf sign --resolved-out`).
    #[arg(long, value_name = "MANIFEST")]
    pub manifest: Option<PathBuf>,

    /// Template variable for the manifest, NAME=VALUE (repeatable).
    #[arg(short = 'D', value_name = "NAME=VALUE", value_parser = parse_define)]
    pub define: Vec<(String, String)>,

    /// Run an image made by `conf wrap` (docker-archive:PATH, oci:DIR[:TAG],
    /// oci-archive:PATH) without a container engine: its signature and
    /// MRENCLAVE are checked, its layers unpacked (cached).
    #[arg(long, value_name = "IMAGE", conflicts_with_all = ["manifest", "sig"])]
    pub image: Option<String>,

    /// Check this SIGSTRUCT (signature and MRENCLAVE) before running.
    #[arg(long, value_name = "SIG")]
    pub sig: Option<PathBuf>,

    /// LibOS log level: error, warning, info, debug or trace (trace prints
    /// every system call). Overrides loader.log_level.
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<LogLevel>,

    /// Enclave backend.
    #[arg(long, value_enum, default_value = "sim")]
    pub backend: Backend,

    /// Without --manifest: make this host directory (or file) writable
    /// inside the enclave (sgx.allowed_files; not protected). Repeatable.
    #[arg(long, value_name = "PATH")]
    pub allow: Vec<PathBuf>,

    /// Without --manifest: also trust this file or directory. Repeatable.
    #[arg(long, value_name = "PATH")]
    pub trust: Vec<PathBuf>,

    /// Testing only: make the host lie in its OCALL replies
    /// (lengths|errno|fds|state|data|random[:SEED]).
    #[arg(long, hide = true, value_name = "MODE")]
    pub insecure_hostile_host: Option<String>,

    /// Development only: use this LibOS ELF instead of the built-in one.
    #[arg(long, hide = true, value_name = "ELF")]
    pub insecure_libos: Option<PathBuf>,

    /// Internal: run as a child enclave process (channel fd, spec fd).
    #[arg(long, hide = true, value_name = "CHAN,SPEC")]
    pub insecure_child: Option<String>,

    /// The program and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

fn parse_define(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not NAME=VALUE")),
    }
}

fn parse_log_level(s: &str) -> Result<LogLevel, String> {
    LogLevel::parse(s).ok_or_else(|| {
        format!("`{s}` is not a log level; use error, warning, info, debug or trace")
    })
}

/// A failure with the exit code conf-run reports for it.
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            code: ExitCode::SetupFailed,
            error: e.into(),
        }
    }
}

fn resolve_options(args: &Args) -> ResolveOptions {
    // conf-run checks the trusted files a snapshot defers as they are
    // opened; `conf sign` and `conf measure` resolve with every check, and
    // so does a run against a signature: a file changed since signing must
    // be refused by the MRENCLAVE check, before anything runs.
    ResolveOptions {
        defer_checks: args.sig.is_none(),
        ..ResolveOptions::default()
    }
}

/// Phase timings on stderr when CONF_TIMING is set (for profiling start-up).
pub fn timing(what: &str, since: std::time::Instant) {
    if std::env::var_os("CONF_TIMING").is_some() {
        eprintln!(
            "[conf] timing: {what}: {:.2} ms",
            since.elapsed().as_secs_f64() * 1000.0
        );
    }
}

fn build(args: &Args, libos: &'static [u8]) -> Result<BuiltImage, Failure> {
    if let Some(spec) = &args.image {
        return Ok(crate::oci::wrapped::build_for_run(
            spec,
            !args.command.is_empty(),
            libos,
        )?);
    }
    if let Some(path) = &args.manifest {
        let defines = args.define.iter().cloned().collect();
        let img = image::build_image_with(path, &defines, &resolve_options(args), libos)
            .with_context(|| format!("cannot use manifest {}", path.display()))?;
        if !args.command.is_empty() && !img.resolved.use_cmdline_argv {
            return Err(Failure {
                code: ExitCode::Usage,
                error: anyhow::anyhow!(
                    "the manifest {} fixes the program's arguments (loader.argv); remove the command after the options, or set loader.insecure__use_cmdline_argv = true in the manifest",
                    path.display()
                ),
            });
        }
        return Ok(img);
    }
    if args.command.is_empty() {
        return Err(Failure {
            code: ExitCode::Usage,
            error: anyhow::anyhow!(
                "nothing to run: give a command (conf-run python3 app.py) or --manifest FILE"
            ),
        });
    }
    let t0 = std::time::Instant::now();
    let synth =
        crate::synth::synthesize(&args.command, &synth_options(args)?).map_err(|e| Failure {
            code: e.exit_code(),
            error: e.into(),
        })?;
    timing("synthesize", t0);
    if args.log_level.is_some_and(|l| l >= LogLevel::Debug) && synth.replayed {
        eprintln!(
            "[conf] the manifest synthesized for this command line at an earlier start still \
             holds (nothing it was made from changed): using it"
        );
    }
    if args.log_level.is_some_and(|l| l >= LogLevel::Info) {
        for n in &synth.notes {
            eprintln!("[conf] {n}");
        }
    }
    let t0 = std::time::Instant::now();
    let img = image::build_from_manifest(&synth.manifest, &resolve_options(args), libos)?;
    timing("resolve and lay out", t0);
    Ok(img)
}

fn synth_options(args: &Args) -> anyhow::Result<crate::synth::SynthOptions> {
    let mut o =
        crate::synth::SynthOptions::from_process().context("cannot read the working directory")?;
    o.allow = args.allow.clone();
    o.trust = args.trust.clone();
    Ok(o)
}

fn check_signature(path: &std::path::Path, img: &BuiltImage) -> anyhow::Result<()> {
    use crate::sgx::sigstruct::Sigstruct;
    let sig = Sigstruct::read_file(path)?;
    sig.verify()
        .with_context(|| format!("the signature in {} is not valid", path.display()))?;
    let ours = img.layout.mrenclave();
    if sig.mrenclave() != ours {
        bail!(
            "refusing to run: MRENCLAVE differs from the signed one in {} (this enclave measures {}, the signature covers {}). The manifest, a trusted file or conf itself changed since signing; re-sign with `conf sign`, or use the resolved manifest saved at signing time (`conf sign --resolved-out`) to have the changed file named",
            path.display(),
            crate::sgx::hex::encode(ours),
            crate::sgx::hex::encode(sig.mrenclave())
        );
    }
    Ok(())
}

/// Host environment entries the manifest passes through.
fn passthrough_env(img: &BuiltImage) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for v in &img.resolved.env {
        if v.value == EnvValue::Passthrough {
            if let Some(val) = std::env::var_os(&v.name) {
                let mut e = v.name.clone().into_bytes();
                e.push(b'=');
                e.extend_from_slice(val.as_bytes());
                out.push(e);
            }
        }
    }
    out
}

/// Run conf-run with parsed arguments; returns the exit status.
pub fn main_exec(args: Args) -> Result<i32, Failure> {
    let hostile = match &args.insecure_hostile_host {
        Some(m) => Some(hostile::Mode::parse(m).ok_or_else(|| Failure {
            code: ExitCode::Usage,
            error: anyhow::anyhow!("--insecure-hostile-host: unknown mode `{m}`; use lengths, errno, fds, state, data or random, optionally with :SEED"),
        })?),
        None => None,
    };
    let libos: &'static [u8] = match &args.insecure_libos {
        // Kept for the life of the process, like the built-in one.
        Some(p) => std::fs::read(p)
            .with_context(|| format!("cannot read LibOS {}", p.display()))?
            .leak(),
        None => image::default_libos(),
    };
    if args.backend == Backend::Sgx && !std::path::Path::new("/dev/sgx_enclave").exists() {
        return Err(run::RunError::NoSgxDevice.into());
    }
    if let Some(c) = &args.insecure_child {
        return run_child(c, &args, libos);
    }
    let img = build(&args, libos)?;
    if let Some(sig) = &args.sig {
        check_signature(sig, &img)?;
    }
    let chunks = img.chunks.clone();
    let root = img.host_root.clone();
    let opts = RunOptions {
        backend: args.backend,
        argv: args.command.iter().map(|a| a.as_bytes().to_vec()).collect(),
        env: passthrough_env(&img),
        log_level: args.log_level,
        hostile,
        ocall_mode: img.resolved.ocall_mode,
        ocall_workers: img.resolved.ocall_workers,
        root: root.as_os_str().as_bytes().to_vec(),
        child: None,
        child_spec: crate::host::process::ChildSpec {
            manifest: img.manifest_bytes.clone(),
            root: root.as_os_str().as_bytes().to_vec(),
            log_level: args.log_level.map(|l| l as u8),
            fds: Vec::new(),
            count_fd: -1,
            mrenclave: None,
        },
        max_processes: img.resolved.max_processes,
        unchecked: img.unchecked.clone(),
        hints_key: img.files_key.clone(),
    };
    // The host knows files by host path; the manifest by enclave path.
    let root_prefix = root.to_string_lossy().trim_end_matches('/').to_string();
    let lookup = move |host: &str| -> Option<std::sync::Arc<[conf_abi::trusted::Digest32]>> {
        let enclave = if root_prefix.is_empty() {
            Some(host)
        } else {
            host.strip_prefix(root_prefix.as_str())
        };
        enclave
            .and_then(|p| chunks.get(p))
            .or_else(|| chunks.get(host))
    };
    let code = run::run(std::sync::Arc::new(img.layout), Box::new(lookup), opts)?;
    Ok(code)
}

/// conf-run --insecure-child: the same enclave again, for a child process
/// of a program running in it; its state arrives over the channel.
fn run_child(arg: &str, args: &Args, libos: &'static [u8]) -> Result<i32, Failure> {
    let bad = || Failure {
        code: ExitCode::Usage,
        error: anyhow::anyhow!("--insecure-child takes [warm:|zygote:]CHANNEL_FD,SPEC_FD"),
    };
    let (kind, arg) = if let Some(rest) = arg.strip_prefix("warm:") {
        (ChildKind::Warm, rest)
    } else if let Some(rest) = arg.strip_prefix("zygote:") {
        (ChildKind::Zygote, rest)
    } else {
        (ChildKind::Ready, arg)
    };
    let (c, s) = arg.split_once(',').ok_or_else(bad)?;
    let (chan_fd, spec_fd): (i32, i32) =
        (c.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?);
    let spec = match crate::host::process::read_spec(spec_fd) {
        Ok(s) => s,
        // A child started ahead of need is written its description by a
        // thread of the parent, which may end (the program exits) before it
        // is done: nobody waits for this process, so it just ends.
        Err(_) if kind != ChildKind::Ready => std::process::exit(0),
        Err(e) => {
            return Err(anyhow::Error::from(e)
                .context("cannot read the child process description from the parent")
                .into())
        }
    };
    let resolved = conf_abi::manifest::ResolvedManifest::decode(&spec.manifest)
        .map_err(|e| anyhow::anyhow!("the parent's manifest does not decode: {e}"))?;
    let img = image::build::build_resolved_bytes(
        resolved,
        spec.manifest.clone(),
        conf_manifest::ChunkIndex::default(),
        libos,
    )?;
    if kind != ChildKind::Zygote {
        return run_child_image(img, &spec, kind == ChildKind::Warm, chan_fd, args);
    }
    // The zygote: each clone runs a waiting child with its own copy of the
    // image; the zygote itself ends when the parent goes.
    crate::host::zygote::serve(chan_fd, |control| {
        run_child_image(img, &spec, true, control, args)
    })
    .unwrap_or(Ok(0))
}

/// Run a child conf-run's enclave from its image: a ready child's channel
/// is `chan_fd`; a waiting (`warm`) one gets it over `chan_fd` later.
fn run_child_image(
    img: image::BuiltImage,
    spec: &crate::host::process::ChildSpec,
    warm: bool,
    chan_fd: i32,
    args: &Args,
) -> Result<i32, Failure> {
    let opts = RunOptions {
        backend: args.backend,
        argv: Vec::new(),
        env: Vec::new(),
        log_level: spec
            .log_level
            .and_then(conf_abi::manifest::LogLevel::from_raw),
        hostile: None,
        ocall_mode: img.resolved.ocall_mode,
        ocall_workers: img.resolved.ocall_workers,
        root: spec.root.clone(),
        child: Some(run::ChildRun {
            start: if warm {
                crate::host::process::StartFrom::Warm { control: chan_fd }
            } else {
                crate::host::process::StartFrom::Ready {
                    chan: chan_fd,
                    fds: spec.fds.clone(),
                }
            },
        }),
        child_spec: crate::host::process::ChildSpec {
            fds: Vec::new(),
            ..spec.clone()
        },
        max_processes: img.resolved.max_processes,
        unchecked: Default::default(),
        hints_key: None,
    };
    // Digests the first process's resolution stored; anything else is
    // hashed when opened.
    let cache = conf_manifest::DigestCache::open(&conf_manifest::default_cache_dir());
    let lookup = move |host: &str| cache.chunks(host);
    Ok(run::run(
        std::sync::Arc::new(img.layout),
        Box::new(lookup),
        opts,
    )?)
}
