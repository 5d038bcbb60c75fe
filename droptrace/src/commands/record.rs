//! `droptrace record`: the live source, copying packet bytes, into the recording sink.
use std::{
    fs::{File, OpenOptions},
    io::IsTerminal,
    os::unix::fs::OpenOptionsExt,
    path::Path,
    time::Duration,
};

use crate::{
    cli::RecordArgs,
    error::Error,
    pipeline::drive,
    probe::{clock, LiveOptions, LiveSource},
    record::{Header, Writer},
    sinks::recorder::{write_error, Recorder},
};

/// Counters go in and blocks go out this often (the most a SIGKILL can lose).
const FLUSH_EVERY: Duration = Duration::from_millis(250);

pub async fn run(args: RecordArgs) -> Result<(), Error> {
    let mut source = LiveSource::start(
        &args.live,
        LiveOptions {
            snaplen: args.snaplen,
            duration: args.duration.map(Duration::from_secs_f64),
            tick: Some(FLUSH_EVERY),
            name_places: true,
            control: None,
        },
    )?;
    let file = create(&args.output, args.force)?;
    let header = Header {
        kernel_release: clock::kernel_release(),
        hostname: clock::hostname(),
        boot_time_ns: clock::boot_time_ns(),
        started_ns: clock::boottime_ns(),
        filters: source.describe_filters(),
        snaplen: args.snaplen,
        reasons: source
            .reasons()
            .map(|t| t.entries().map(|(v, n)| (v, n.to_owned())).collect())
            .unwrap_or_default(),
        ..Header::default()
    };
    let writer = Writer::new(file, &header).map_err(|e| write_error(&args.output, e))?;
    let mut recorder = Recorder::new(
        writer,
        args.output.clone(),
        args.count,
        std::io::stderr().is_terminal(),
    );
    source.announce(&match (args.duration, args.count) {
        (Some(d), _) => format!("recording to {} for {d} s", args.output.display()),
        (None, Some(n)) => format!("recording {n} drops to {}", args.output.display()),
        (None, None) => format!("recording to {}; Ctrl-C to stop", args.output.display()),
    });
    drive(&mut source, &mut [&mut recorder]).await?;
    Ok(())
}

/// A new file, readable by its owner only (it holds addresses and ports of real traffic);
/// an existing one is replaced only with `--force`, and never through a symlink.
fn create(path: &Path, force: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
            " (it exists; give --force to replace it)"
        } else {
            ""
        };
        Error::Io(format!("creating {}{hint}", path.display()), e)
    })?;
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Io(format!("setting the mode of {}", path.display()), e))?;
    Ok(file)
}
