//! `conf wrap SRC -o DEST --key KEY.pem`: turn a container image into a
//! signed enclave image (see docs/wrap.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use conf_loader::exit::ExitCode;
use conf_loader::image::{build_from_manifest, default_libos};
use conf_loader::oci::source::Image;
use conf_loader::oci::write::{write_image, Output};
use conf_loader::oci::{self, generate, wrapped, ImageRef, Transport};
use conf_loader::sgx::{hex, read_signing_key, SigDate, SignParams, Sigstruct};
use conf_manifest::{Progress, ResolveOptions};
use serde_json::{json, Value};

#[derive(clap::Args)]
pub struct Args {
    /// The image to wrap: docker-archive:PATH (what `docker save` writes),
    /// oci:DIR[:TAG] or oci-archive:PATH[:TAG]. A bare path is a
    /// docker-archive.
    #[arg(value_name = "SRC")]
    source: String,
    /// Where to write the enclave image, in the same syntax (a bare path is
    /// a docker-archive). The optional :TAG names the image in it.
    #[arg(short, long, value_name = "DEST")]
    output: String,
    /// The signing key: RSA-3072, exponent 3, PEM. It is read, never copied
    /// into the image.
    #[arg(short, long, value_name = "KEY.pem")]
    key: PathBuf,
    /// Extra manifest (TOML) merged over the generated one: its values win,
    /// trusted/allowed files and mounts are added, PATH-like variables are
    /// prepended. Paths in it are paths in the image.
    #[arg(long, value_name = "EXTRA.toml")]
    manifest: Option<PathBuf>,
    /// DATE of the SIGSTRUCT and time of the conf layer's files; today
    /// (UTC) by default. Fix it for reproducible images.
    #[arg(long, value_name = "YYYYMMDD", value_parser = super::parse_date)]
    date: Option<SigDate>,
    /// The conf-run binary to put in the image; default: the conf-run next
    /// to this conf.
    #[arg(long, value_name = "PATH")]
    conf_run: Option<PathBuf>,
    /// Also write the merged manifest (TOML, host paths of the unpacked
    /// image) here, to see what was trusted.
    #[arg(long, value_name = "FILE", hide = true)]
    manifest_out: Option<PathBuf>,
}

fn conf_run_path(given: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    let me = std::env::current_exe().context("cannot find the conf executable")?;
    let p = me.with_file_name("conf-run");
    if !p.is_file() {
        bail!(
            "cannot find conf-run next to conf ({}); build it (cargo build -p conf-loader) or give --conf-run PATH",
            p.display()
        );
    }
    Ok(p)
}

/// Whether `haystack` (a conf-run binary) holds `libos` byte for byte.
fn embeds(haystack: &[u8], libos: &[u8]) -> bool {
    let Some(head) = libos.get(..64) else {
        return false;
    };
    haystack.len() >= libos.len()
        && (0..=haystack.len() - libos.len())
            .filter(|&i| haystack[i] == head[0])
            .any(|i| &haystack[i..i + 64] == head && &haystack[i..i + libos.len()] == libos)
}

/// The name of the output image.
fn output_name(dest: &ImageRef, src: &Image) -> String {
    if let Some(r) = &dest.reference {
        return r.clone();
    }
    match (dest.transport, &src.repo_tag) {
        (Transport::DockerArchive, Some(t)) => match t.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => format!("{repo}:{tag}-conf"),
            _ => format!("{t}:conf"),
        },
        (Transport::DockerArchive, None) => "localhost/conf-wrapped:latest".to_string(),
        (_, Some(t)) if !t.contains(':') && !t.contains('/') => format!("{t}-conf"),
        _ => "latest".to_string(),
    }
}

/// The config of the wrapped image.
fn new_config(
    src: &Image,
    diff_id: &str,
    mrenclave: &str,
    mrsigner: &str,
    date: &SigDate,
) -> Value {
    let mut c = src.config.clone();
    let obj = c.as_object_mut().expect("checked when the image was read");
    let run = obj.entry("config").or_insert_with(|| json!({}));
    if !run.is_object() {
        *run = json!({});
    }
    let run = run.as_object_mut().expect("an object");
    run.insert("Entrypoint".into(), json!(wrapped::entrypoint()));
    run.remove("Cmd");
    let labels = run.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    labels[wrapped::LABEL_MRENCLAVE] = json!(mrenclave);
    labels[wrapped::LABEL_MRSIGNER] = json!(mrsigner);
    if let Some(ids) = obj
        .get_mut("rootfs")
        .and_then(|r| r.get_mut("diff_ids"))
        .and_then(Value::as_array_mut)
    {
        ids.push(json!(diff_id));
    }
    let created = format!("{date}T00:00:00Z");
    let entry = json!({ "created": created, "created_by": "conf wrap", "comment": "conf-run, the resolved manifest and its SIGSTRUCT" });
    match obj.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(entry),
        None => {
            obj.insert("history".into(), json!([entry]));
        }
    }
    c
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    // The key first: a bad key should not cost an unpack.
    let key = read_signing_key(&args.key)?;
    let src_ref =
        ImageRef::parse(&args.source, Some(Transport::DockerArchive)).map_err(|e| anyhow!(e))?;
    let dest_ref =
        ImageRef::parse(&args.output, Some(Transport::DockerArchive)).map_err(|e| anyhow!(e))?;
    let extra = match &args.manifest {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the extra manifest {}", p.display()))?,
        ),
        None => None,
    };
    let conf_run_path = conf_run_path(&args.conf_run)?;
    let conf_run = std::fs::read(&conf_run_path)
        .with_context(|| format!("cannot read conf-run {}", conf_run_path.display()))?;
    if !embeds(&conf_run, default_libos()) {
        bail!(
            "conf-run {} carries another LibOS than this conf (they come from different builds): the enclave it would start does not measure to the MRENCLAVE conf signs, and `conf-run --image` would refuse the image. Use the conf-run built with this conf (rebuild both: cargo build --release -p conf-tools -p conf-loader)",
            conf_run_path.display()
        );
    }
    let date = args.date.unwrap_or_else(SigDate::today_utc);

    let img = Image::open(&src_ref)?;
    if img.layers.is_empty() {
        bail!("{}: the image has no layers", img.name);
    }

    // Unpack into a scratch directory next to the image cache.
    let cache = wrapped::cache_root();
    let scratch = wrapped::scratch_dir(&cache)?;
    let root = scratch.path().join("rootfs");
    std::fs::create_dir(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let total: u64 = img.layers.iter().map(|l| l.size).sum();
    let bar = oci::progress_bar(total, "unpacking");
    let t0 = Instant::now();
    let stats = wrapped::unpack_layers(&img, img.layers.len(), &root, &bar)?;
    bar.finish_and_clear();
    let unpack_time = t0.elapsed();

    // The manifest: generated, then the user's extra merged over it.
    let generated = generate::generate(&img.config, &root)
        .with_context(|| format!("cannot make a manifest for {}", img.name))?;
    for n in &generated.notes {
        eprintln!("conf: note: {n}");
    }
    let (text, origin) = match (&extra, &args.manifest) {
        (Some(x), Some(p)) => (
            generate::merge(&generated.manifest, x, &p.display().to_string())?,
            format!("{} merged into the manifest of {}", p.display(), img.name),
        ),
        _ => (
            generated.manifest.to_toml(),
            format!("<manifest of {}>", img.name),
        ),
    };
    if let Some(out) = &args.manifest_out {
        std::fs::write(out, &text).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let manifest = conf_manifest::parse_str(&text, &origin, &BTreeMap::new())?;
    for w in &manifest.warnings {
        eprintln!("conf: warning: {w}");
    }

    // Resolve (hash every trusted file) and measure.
    let t0 = Instant::now();
    let opts = ResolveOptions {
        progress: Progress::Auto,
        cache_dir: Some(scratch.path().join("digests")),
        threads: 0,
        defer_checks: false,
    };
    let built = build_from_manifest(&manifest, &opts, default_libos())
        .with_context(|| format!("cannot build the enclave of {}", img.name))?;
    let hash_time = t0.elapsed();
    if let Some(s) = &built.stats {
        for w in &s.warnings {
            eprintln!("conf: warning: {w}");
        }
    }
    let mrenclave = built.layout.mrenclave();
    let params = SignParams {
        mrenclave,
        isvprodid: built.resolved.isvprodid,
        isvsvn: built.resolved.isvsvn,
        debug: built.resolved.debug,
        date,
    };
    let sig = Sigstruct::sign(&key, &params)?;
    sig.verify()
        .context("the SIGSTRUCT just signed does not verify; this is a bug in conf")?;
    drop(key);

    // The conf layer and the new image.
    let layer = wrapped::conf_layer(
        &conf_run,
        &built.manifest_bytes,
        sig.as_bytes(),
        oci::date_epoch(&date),
    )
    .context("cannot build the conf layer")?;
    let config = new_config(
        &img,
        &layer.diff_id(),
        &hex::encode(mrenclave),
        &hex::encode(sig.mrsigner()),
        &date,
    );
    let name = output_name(&dest_ref, &img);
    let t0 = Instant::now();
    let bar = oci::progress_bar(total, "writing");
    write_image(
        &Output {
            dest: &dest_ref,
            source: &img,
            config: &config,
            layer: &layer,
            name: &name,
            mtime: oci::date_epoch(&date),
        },
        &bar,
    )?;
    bar.finish_and_clear();
    let write_time = t0.elapsed();

    // Keep the unpacked tree: `conf-run --image` on this machine starts at once.
    let id = wrapped::chain_id(&img, img.layers.len());
    if let Err(e) = wrapped::keep_in_cache(&cache, &id, &root) {
        eprintln!("conf: note: the unpacked image is not cached: {e:#}");
    }
    drop(scratch);

    let s = built.stats.as_ref();
    println!("wrapped {} -> {dest_ref} ({name})", img.name);
    println!(
        "runtime:   {} ({} trusted files, {:.1} MB; enclave {} MiB, {} threads)",
        generated.runtime,
        s.map_or(0, |s| s.files),
        s.map_or(0, |s| s.bytes) as f64 / 1e6,
        built.resolved.enclave_size >> 20,
        built.resolved.max_threads
    );
    println!("mrenclave: {}", hex::encode(mrenclave));
    println!("mrsigner:  {}", hex::encode(sig.mrsigner()));
    println!("date:      {date}");
    if std::env::var_os("CONF_TIMING").is_some() {
        eprintln!(
            "conf: timing: unpack {:.2} s ({} files, {:.1} MB), resolve+measure {:.2} s, write {:.2} s, total {:.2} s",
            unpack_time.as_secs_f64(),
            stats.files,
            stats.bytes as f64 / 1e6,
            hash_time.as_secs_f64(),
            write_time.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::Success)
}

/// For `conf inspect`: the SIGSTRUCT of a wrapped image.
pub fn image_sigstruct(spec: &str) -> anyhow::Result<Sigstruct> {
    let img = wrapped::open(spec)?;
    Ok(wrapped::read_conf_layer(&img)?.sig)
}

/// Whether `path` looks like an image rather than a SIGSTRUCT file.
pub fn is_image(spec: &str) -> bool {
    if ImageRef::has_transport(spec) {
        return true;
    }
    let p = Path::new(spec);
    p.is_dir() || std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() > 4096)
}
