//! The commands, one thin file each: a source, its sinks, and the drive loop between them.
//! On a terminal a live run opens the live view; otherwise it prints drops as they come
//! (text) or a summary at the end (JSON).
mod diagnose;
pub mod error;
mod export;
mod live_view;
mod record;
mod replay;
mod report;
mod serve;
mod view;
mod watch;

use std::{
    fs::{File, OpenOptions},
    io::IsTerminal,
    os::unix::fs::OpenOptionsExt,
    path::Path,
};

use crate::{
    cli::{Cli, Command},
    commands::error::Error,
};

pub fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Some(Command::Diagnose(args)) => block_on(diagnose::run(args)),
        Some(Command::Record(args)) => block_on(record::run(args)),
        Some(Command::Report(args)) => report::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Replay(args)) => replay::run(&args, on_terminal()),
        Some(Command::Serve(args)) => block_on(serve::run(args)),
        None if cli.format.is_none() && on_terminal() => live_view::run(cli),
        None => block_on(watch::run(cli)),
    }
}

/// Runs a command on a runtime of its own thread.
fn block_on(command: impl std::future::Future<Output = Result<(), Error>>) -> Result<(), Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the runtime".into(), e))?
        .block_on(command)
}

/// The live view needs a terminal for its output and for keys.
fn on_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Whether `create_private(path, replace)` would refuse `path` for being a symlink or
/// existing: asked before a long run that writes it only at its end.
pub fn check_creatable(path: &Path, replace: bool) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(Error::Symlink(path.to_owned())),
        Ok(m) if m.is_dir() => Err(Error::Io(
            format!("creating {}", path.display()),
            std::io::ErrorKind::IsADirectory.into(),
        )),
        Ok(_) if !replace => Err(Error::Exists(path.to_owned())),
        _ => Ok(()),
    }
}

/// A new file, readable by its owner only (recordings and exports hold addresses and ports
/// of real traffic); an existing one is replaced only when `replace` (`record --force`;
/// always for exports), and never through a symlink.
pub fn create_private(path: &Path, replace: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let file = options.open(path).map_err(|e| match e.raw_os_error() {
        // O_NOFOLLOW refuses a symlink with ELOOP, whose own text misleads.
        Some(libc::ELOOP) => Error::Symlink(path.to_owned()),
        Some(libc::EEXIST) => Error::Exists(path.to_owned()),
        _ => Error::Io(format!("creating {}", path.display()), e),
    })?;
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::Io(format!("setting the mode of {}", path.display()), e))?;
    Ok(file)
}
